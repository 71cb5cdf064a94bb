/*
 * The supervisor's process-wide state, one instance per vetsyncd, as tmux
 * keeps its server globals: the event base, the configuration in force, the
 * loaded policy and the cgroup manager.  Owned by vetsyncd.c; the modules
 * read it and never free what it points to.
 */
#ifndef VS_SUPERVISOR_SUPERVISOR_H
#define VS_SUPERVISOR_SUPERVISOR_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct config;
struct policy;
struct cgroup_manager;

struct supervisor {
	struct event_base *base;
	struct config *config;
	struct policy *policy;
	struct cgroup_manager *cgroups;	/* NULL: rlimits only (accepted) */
	char mechanism[256];		/* what caps the workers, for status */
	char policy_sha256[65];		/* policy files + worker binary */

	bool drop_identity;		/* running as root */
	uid_t worker_uid;
	gid_t worker_gid;

	char *profile_text;		/* the IDEXX site profile, as read */

	uint8_t *setup_frame;		/* the encoded Setup every worker gets */
	size_t setup_len;

	bool stopping;			/* SIGTERM: no new work */
	uint64_t next_job_id;
	uint64_t started_ms;		/* monotonic */
};

extern struct supervisor *sv;

#endif
