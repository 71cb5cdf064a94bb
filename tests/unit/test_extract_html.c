/* HTML extraction tests (included by test_extract.c). */
#define HTML_TESTS
