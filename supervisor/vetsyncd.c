/* vetsyncd: placeholder main until the supervisor modules land. */
#include "common/log.h"

int
main(void)
{
	log_init("vetsyncd", LOG_LEVEL_INFO);
	return 0;
}
