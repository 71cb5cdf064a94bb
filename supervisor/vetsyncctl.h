/*
 * vetsyncctl's commands share these: the exit codes, the control socket
 * round trip and the database connection.  Each group of commands lives
 * in its own file (vetsyncctl.c, ctl_credentials.c).
 */
#ifndef VS_SUPERVISOR_VETSYNCCTL_H
#define VS_SUPERVISOR_VETSYNCCTL_H

#include <jansson.h>

struct db;

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define EXIT_UNAVAILABLE 4

/*
 * Send one request line to vetsyncd, read its one answer line; the request
 * text is wiped after sending.  Returns 0 or -EXIT_UNREACHABLE /
 * -EXIT_FAILED, having said why on stderr.
 */
int ctl_ask(json_t *req, json_t **ret);

/* Print the answer's error and return 0 unless its "ok" is true. */
int ctl_answer_ok(json_t *ans);

/*
 * Connect with conninfo, or as vetsyncd would (the configuration's
 * database.* and the db-password secret) when it is NULL.  Returns 0 or
 * EXIT_FAILED, having said why on stderr.
 */
int ctl_db_open(const char *conninfo, struct db **ret);

/* The configuration file given with -c (or the default). */
const char *ctl_config_path(void);

int cmd_credentials(int argc, char **argv);
int cmd_keys(int argc, char **argv);

#endif
