/*
 * lease.c - the volume writer lease of a read-write mount (src/fatsrv/
 * writer.c keeps it at the FAT): taken at start, renewed every third of its
 * length by a thread ("pstorefs-lease"), given back at unmount after the
 * last commit.  Its fencing token goes with every commit (alloc), so a
 * mount that lost its lease can no longer change the volume.
 *
 * The session id that names the holder lives in the state directory
 * ("writer_session"): a mount restarted on the same state (after a crash)
 * is the same writer and takes its lease back at once; a mount with another
 * state directory is refused while the lease is alive.  (refresh.c's flock
 * on <state>/lock keeps two pstorefs off one state directory.)
 *
 * If a renewal finds the lease taken by another mount (this one was paused
 * or cut off longer than the lease), the mount is fenced: commits are
 * refused by the FAT, the journal keeps the changes, and the log says to
 * unmount.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

#define SESSION_LEN 16

static uint8_t session[SESSION_LEN];
static uint64_t token; /* lease_lock */
static bool fenced;    /* lease_lock */
static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lease_cond;
static bool lease_stopping; /* lease_lock */
static bool lease_running;
static pthread_t lease_thread;

static int call(uint16_t type, uint64_t tok, Pstore__WriterLeaseReply **out, char *err,
		size_t errlen)
{
	Pstore__WriterLease wl = PSTORE__WRITER_LEASE__INIT;
	struct xport_reply rep;
	int rc;

	wl.volume = fs.vol.name;
	wl.session.data = session;
	wl.session.len = SESSION_LEN;
	wl.token = tok;
	wl.lease_ms = fs.cfg.writer_lease_ms;
	memset(&rep, 0, sizeof(rep));
	if (err && errlen)
		err[0] = '\0';
	rc = alloc_fat_call_err(fs.alloc, type, &wl.base,
				&pstore__writer_lease_reply__descriptor, &rep, err, errlen);
	if (rc < 0) {
		if (err && errlen && !err[0])
			snprintf(err, errlen, "%s", strerror(-rc));
		xport_reply_clear(&rep);
		return rc;
	}
	*out = (Pstore__WriterLeaseReply *)rep.msg;
	rep.msg = NULL;
	xport_reply_clear(&rep);
	return *out ? 0 : -EBADMSG;
}

static int load_session(void)
{
	struct fs_txn t;
	int rc = meta_begin(fs.meta, true, &t);

	if (rc < 0)
		return rc;
	rc = meta_get_blob(&t, "writer_session", session, SESSION_LEN);
	if (rc == -ENOENT || rc == -EBADMSG) {
		random_fill(session, SESSION_LEN);
		rc = meta_put_blob(&t, "writer_session", session, SESSION_LEN);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	return rc;
}

static void *lease_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lease_lock);
	while (!lease_stopping) {
		struct timespec ts;
		Pstore__WriterLeaseReply *r = NULL;
		char err[256] = "";
		uint64_t tok = token;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += fs.cfg.writer_lease_ms / 3000;
		ts.tv_nsec += (long)(fs.cfg.writer_lease_ms / 3 % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&lease_cond, &lease_lock, &ts);
		if (lease_stopping || fenced)
			continue;
		pthread_mutex_unlock(&lease_lock);
		rc = call(MSG_WRITER_ACQUIRE, tok, &r, err, sizeof(err));
		pthread_mutex_lock(&lease_lock);
		if (rc == 0 && r->token != tok)
			rc = -ESTALE;
		if (rc == -ESTALE || rc == -EBUSY) {
			fenced = true;
			log_err(
			    "writer lease of volume %s lost (%s): another mount took it; this "
			    "mount's changes are no longer committed (they stay in its "
			    "journal): "
			    "unmount it",
			    fs.vol.name, rc == -ESTALE && !err[0] ? "token changed" : err);
		} else if (rc < 0) {
			log_warn("writer lease of volume %s: renewal failed (%s); retrying",
				 fs.vol.name, err);
		}
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	pthread_mutex_unlock(&lease_lock);
	return NULL;
}

int lease_start(void)
{
	Pstore__WriterLeaseReply *r = NULL;
	pthread_condattr_t ca;
	char err[256] = "";
	int rc;

	rc = load_session();
	if (rc < 0)
		return rc;
	rc = call(MSG_WRITER_ACQUIRE, 0, &r, err, sizeof(err));
	if (rc < 0) {
		if (rc == -EBUSY)
			log_err("cannot mount read-write: %s", err);
		else
			log_err("cannot take the writer lease of volume %s: %s", fs.vol.name,
				err);
		return rc;
	}
	token = r->token;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	alloc_set_writer_token(fs.alloc, token);
	log_info("writer lease of volume %s taken (token %" PRIu64
		 ", %u ms, renewed every %u ms)",
		 fs.vol.name, token, fs.cfg.writer_lease_ms, fs.cfg.writer_lease_ms / 3);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lease_cond, &ca);
	pthread_condattr_destroy(&ca);
	lease_stopping = false;
	rc = pthread_create(&lease_thread, NULL, lease_main, NULL);
	if (rc) {
		log_err("cannot start the lease thread: %s", strerror(rc));
		return -rc;
	}
	pthread_setname_np(lease_thread, "pstorefs-lease");
	lease_running = true;
	return 0;
}

void lease_stop(void)
{
	Pstore__WriterLeaseReply *r = NULL;
	bool was_fenced;

	if (lease_running) {
		pthread_mutex_lock(&lease_lock);
		lease_stopping = true;
		pthread_cond_broadcast(&lease_cond);
		pthread_mutex_unlock(&lease_lock);
		pthread_join(lease_thread, NULL);
		lease_running = false;
		pthread_mutex_lock(&lease_lock);
		was_fenced = fenced;
		pthread_mutex_unlock(&lease_lock);
		if (!was_fenced && call(MSG_WRITER_RELEASE, token, &r, NULL, 0) == 0) {
			log_info("writer lease of volume %s released", fs.vol.name);
			protobuf_c_message_free_unpacked(&r->base, NULL);
		}
	}
}
