/*
 * leader.c - the leader among fatd instances sharing one etcd cluster.
 *
 * The leader key "<prefix>sys/leader" holds the leader's fatd id and is
 * attached to that fatd's etcd lease: when the fatd dies or is cut off, the
 * lease expires after ttl_s and the key goes with it, and another fatd's
 * campaign (a txn "create only if absent") wins.  A fatd acts as leader
 * only while (a) it created the key, and (b) its last successful lease
 * renewal was sent less than ttl_s minus a margin ago; and every commit it
 * makes in that role is fenced on the key's create_revision (store_etcd.c),
 * so even a fatd paused past its lease cannot commit as leader once another
 * one took over.  The leader's serial role is the housekeeping of main.c
 * (lease expiry and request-id GC); everything else is done by any fatd.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "etcd.h"

#define LEADER_KEY "sys/leader"
#define LEADER_MARGIN_MS 1000

struct fat_leader {
	struct fat_store *s;
	struct etcd_conn *c;
	uint32_t id;
	unsigned ttl_s;
	char key[320];	   /* full etcd key */
	int64_t lease;	   /* 0 = none */
	uint64_t lease_ok; /* now_ms() when the last successful renewal was sent */
	uint64_t next_renew;
	int64_t crev; /* create_revision of our leader key */
	bool leader;
	uint32_t holder; /* last seen holder (0 = none) */
};

int fat_leader_new(struct fat_store *s, uint32_t my_id, unsigned ttl_s, struct fat_leader **out)
{
	struct fat_leader *l;

	*out = NULL;
	if (!fat_store_etcd_conn(s) || ttl_s < 2)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->s = s;
	l->c = fat_store_etcd_conn(s);
	l->id = my_id;
	l->ttl_s = ttl_s;
	if (fat_store_etcd_key(s, LEADER_KEY, l->key, sizeof(l->key)) < 0) {
		free(l);
		return -EINVAL;
	}
	*out = l;
	return 0;
}

static void lose(struct fat_leader *l, const char *why)
{
	if (l->leader)
		log_warn("leader: no longer the FAT leader: %s", why);
	l->leader = false;
	l->crev = 0;
	fat_store_etcd_fence(l->s, NULL, 0);
}

/* The key's current holder from a range/txn kvs array. */
static void note_holder(struct fat_leader *l, json_object *kvs)
{
	json_object *kv;
	uint8_t *v;
	size_t vl;
	uint64_t id;

	l->holder = 0;
	if (!kvs || json_object_array_length(kvs) == 0)
		return;
	kv = json_object_array_get_idx(kvs, 0);
	if (etcd_unb64(json_object_object_get(kv, "value"), &v, &vl) == 0) {
		if (parse_u64((char *)v, &id) == 0 && id <= UINT32_MAX)
			l->holder = (uint32_t)id;
		free(v);
	}
	/* ours, from before a lapse of freshness: take the role back */
	if (l->holder == l->id && etcd_i64(kv, "lease", 0) == l->lease && l->lease) {
		l->leader = true;
		l->crev = etcd_i64(kv, "create_revision", 0);
		log_info("leader: this fatd (%u) is the FAT leader again", l->id);
	}
}

static void campaign(struct fat_leader *l)
{
	json_object *req = json_object_new_object(), *cmp = json_object_new_array(),
		    *ok = json_object_new_array(), *fail = json_object_new_array();
	json_object *c = json_object_new_object(), *put = json_object_new_object(),
		    *pr = json_object_new_object(), *get = json_object_new_object(),
		    *gr = json_object_new_object();
	json_object *rep = NULL, *s, *resps, *rr, *kvs = NULL, *hdr;
	char val[16];
	int rc;

	snprintf(val, sizeof(val), "%u", l->id);
	json_object_object_add(c, "key", etcd_b64(l->key, strlen(l->key)));
	json_object_object_add(c, "target", json_object_new_string("CREATE"));
	json_object_object_add(c, "result", json_object_new_string("EQUAL"));
	json_object_object_add(c, "create_revision", json_object_new_int64(0));
	json_object_array_add(cmp, c);
	json_object_object_add(pr, "key", etcd_b64(l->key, strlen(l->key)));
	json_object_object_add(pr, "value", etcd_b64(val, strlen(val)));
	json_object_object_add(pr, "lease", json_object_new_int64(l->lease));
	json_object_object_add(put, "request_put", pr);
	json_object_array_add(ok, put);
	json_object_object_add(gr, "key", etcd_b64(l->key, strlen(l->key)));
	json_object_object_add(get, "request_range", gr);
	json_object_array_add(fail, get);
	json_object_object_add(req, "compare", cmp);
	json_object_object_add(req, "success", ok);
	json_object_object_add(req, "failure", fail);
	rc = etcd_call(l->c, "/v3/kv/txn", req, &rep);
	json_object_put(req);
	if (rc < 0)
		return;
	if (json_object_object_get_ex(rep, "succeeded", &s) && json_object_get_boolean(s)) {
		l->leader = true;
		l->holder = l->id;
		l->crev = json_object_object_get_ex(rep, "header", &hdr)
			      ? etcd_i64(hdr, "revision", 0)
			      : 0;
		log_info("leader: this fatd (%u) is now the FAT leader (revision %lld)", l->id,
			 (long long)l->crev);
	} else if (json_object_object_get_ex(rep, "responses", &resps) &&
		   json_object_array_length(resps) > 0 &&
		   json_object_object_get_ex(json_object_array_get_idx(resps, 0),
					     "response_range", &rr)) {
		json_object_object_get_ex(rr, "kvs", &kvs);
		note_holder(l, kvs);
	}
	json_object_put(rep);
}

void fat_leader_tick(struct fat_leader *l)
{
	uint64_t now = now_ms();
	int rc;

	if (l->lease == 0) {
		rc = etcd_lease_grant(l->c, l->ttl_s, &l->lease);
		if (rc < 0) {
			l->lease = 0;
			lose(l, "cannot get an etcd lease");
			return;
		}
		l->lease_ok = now;
		l->next_renew = now + l->ttl_s * 1000u / 3;
	} else if (now >= l->next_renew) {
		int64_t left = 0;

		rc = etcd_lease_keepalive(l->c, l->lease, &left);
		if (rc == 0 && left <= 0) {
			l->lease = 0;
			lose(l, "the etcd lease expired");
			return;
		}
		if (rc == 0) {
			l->lease_ok = now;
			l->next_renew = now + l->ttl_s * 1000u / 3;
		} else {
			l->next_renew = now + 200; /* retry soon */
		}
	}
	if (l->leader && now - l->lease_ok + LEADER_MARGIN_MS >= l->ttl_s * 1000u)
		lose(l, "lease renewal is late");
	if (!l->leader && now - l->lease_ok + LEADER_MARGIN_MS < l->ttl_s * 1000u)
		campaign(l);
}

bool fat_leader_is_me(struct fat_leader *l)
{
	if (l->leader && now_ms() - l->lease_ok + LEADER_MARGIN_MS >= l->ttl_s * 1000u)
		lose(l, "lease renewal is late");
	if (!l->leader)
		return false;
	fat_store_etcd_fence(l->s, l->key, l->crev);
	return true;
}

void fat_leader_unfence(struct fat_leader *l)
{
	fat_store_etcd_fence(l->s, NULL, 0);
}

void fat_leader_stale(struct fat_leader *l)
{
	lose(l, "the leader key changed under a fenced commit");
}

uint32_t fat_leader_id(const struct fat_leader *l)
{
	return l->holder;
}

void fat_leader_resign(struct fat_leader *l)
{
	if (!l || !l->lease)
		return;
	lose(l, "shutting down");
	etcd_lease_revoke(l->c, l->lease); /* drops the leader key at once */
	l->lease = 0;
}

void fat_leader_free(struct fat_leader *l)
{
	free(l);
}
