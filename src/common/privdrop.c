/*
 * privdrop.c - daemons give up root once their sockets are bound: switch to
 * the configured user (config key `user`), its group, and no supplementary
 * groups.  Deliberately forgiving where a deployment is not set up for it
 * (documented in docs/security.md): without a configured user, when not
 * running as root, or when the user does not exist, the daemon logs why and
 * keeps its current identity.  A switch that fails half-way is an error.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common.h"

int privdrop_to(const char *user)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc;

	if (!user || !*user)
		return 0;
	rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (rc != 0 || !res) {
		if (geteuid() == 0)
			log_warn("user '%s' does not exist: continuing as root (create it, or "
				 "remove `user` from the config)",
				 user);
		else
			log_warn("user '%s' does not exist: keeping uid %u", user,
				 (unsigned)geteuid());
		return 0;
	}
	if (geteuid() != 0) {
		if (geteuid() != pw.pw_uid)
			log_warn("not root: cannot switch to user '%s'; keeping uid %u", user,
				 (unsigned)geteuid());
		return 0;
	}
	if (pw.pw_uid == 0) {
		log_warn("user '%s' is root: nothing to drop", user);
		return 0;
	}
	/* Order matters: groups and gid while we still may, the uid last. */
	if (setgroups(1, &pw.pw_gid) < 0 || setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) < 0 ||
	    setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) < 0) {
		rc = -errno;
		log_err("cannot switch to user '%s': %s", user, strerror(-rc));
		return rc;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		log_err("switched to user '%s' but root could be regained: refusing to run",
			user);
		return -EPERM;
	}
	/* setuid clears the dumpable flag; no core files with keys in them. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	log_info("running as user %s (uid %u, gid %u)", user, (unsigned)pw.pw_uid,
		 (unsigned)pw.pw_gid);
	return 0;
}
