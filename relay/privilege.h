#ifndef GOVRELAY_PRIVILEGE_H
#define GOVRELAY_PRIVILEGE_H
/*
 * govrelayd's least privilege: descriptors raised to the hard limit, and
 * the drop from root to the configured `user` after the listeners are
 * bound (relay/privilege.c).
 */
#include <stdint.h>

#include "common/cfg.h"

/* Raises RLIMIT_NOFILE's soft limit to the hard one; returns the limit now in force. */
uint64_t priv_raise_nofile(void);

/*
 * Lowers cfg->max_connections (a snapshot not yet shared) when nofile
 * descriptors cannot hold that many sessions besides the store,
 * listeners, deliveries and logs; logs a warning naming both numbers.
 */
void priv_clamp_connections(struct config *cfg, uint64_t nofile);

/*
 * Started as root: makes sure data_dir is the user's, then drops to the
 * user for good (supplementary groups, gid, uid, each checked) and checks
 * that root cannot be regained. Exits through fatal() on any failure.
 * Started as anyone else: nothing to drop, returns at once.
 */
void priv_drop(const struct config *cfg);

#endif
