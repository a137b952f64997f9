/*
 * status.c - MSG_FAT_STATUS: this fatd's view of the FAT cluster for
 * `pstore fat status`: which fatd holds the leader role, and for every etcd
 * member this fatd is configured with, whether it answers, whether it is
 * the raft leader, its revision and raft index.  Each member is asked
 * directly (one attempt, bounded by the connection's timeout), so a dead
 * member shows as unhealthy instead of failing the whole reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "etcd.h"
#include "fatsrv.h"

static int64_t i64_either(json_object *o, const char *a, const char *b)
{
	int64_t v = etcd_i64(o, a, -1);

	return v >= 0 ? v : etcd_i64(o, b, 0);
}

/* name of member id from a member/list reply (borrowed), or NULL */
static const char *member_name(json_object *list, uint64_t id)
{
	json_object *ms, *m, *n;

	if (!list || !json_object_object_get_ex(list, "members", &ms) ||
	    !json_object_is_type(ms, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(ms); i++) {
		m = json_object_array_get_idx(ms, i);
		if (etcd_u64(m, "ID", 0) == id && json_object_object_get_ex(m, "name", &n))
			return json_object_get_string(n);
	}
	return NULL;
}

static int member_status(struct etcd_conn *conn, size_t i, json_object *list,
			 Pstore__FatMember *m)
{
	json_object *req = json_object_new_object(), *rep = NULL, *hdr = NULL, *errs;
	const char *name;
	int rc;

	m->endpoint = fat_strdup(etcd_conn_endpoint(conn, i));
	rc = etcd_call_one(conn, i, "/v3/maintenance/status", req, &rep);
	json_object_put(req);
	if (rc < 0) {
		m->error = fat_strdup(strerror(-rc));
		m->name = fat_strdup("");
		return m->endpoint && m->error && m->name ? 0 : -ENOMEM;
	}
	json_object_object_get_ex(rep, "header", &hdr);
	m->id = etcd_u64(hdr, "member_id", 0);
	m->revision = etcd_i64(hdr, "revision", 0);
	m->leader = m->id != 0 && etcd_u64(rep, "leader", 0) == m->id;
	m->raft_index = (uint64_t)i64_either(rep, "raftIndex", "raft_index");
	m->db_size = (uint64_t)i64_either(rep, "dbSize", "db_size");
	m->healthy = etcd_u64(rep, "leader", 0) != 0;
	if (json_object_object_get_ex(rep, "errors", &errs) &&
	    json_object_array_length(errs) > 0) {
		m->healthy = false;
		m->error =
		    fat_strdup(json_object_get_string(json_object_array_get_idx(errs, 0)));
	} else {
		m->error = fat_strdup(m->healthy ? "" : "no raft leader");
	}
	name = member_name(list, m->id);
	m->name = fat_strdup(name ? name : "");
	json_object_put(rep);
	return m->endpoint && m->error && m->name ? 0 : -ENOMEM;
}

int fat_cluster_status(struct fat_ctx *fc, Pstore__FatStatusReply **out)
{
	Pstore__FatStatusReply *r = calloc(1, sizeof(*r));
	struct etcd_conn *conn = fat_store_etcd_conn(fc->store);
	json_object *req, *list = NULL;
	size_t n;
	int rc = 0;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	pstore__fat_status_reply__init(r);
	r->fat_id = fc->id;
	if (!conn) {
		r->store = fat_strdup("lmdb");
		r->leader_fat_id = fc->id; /* one server: always the leader */
		r->is_leader = true;
		if (!r->store)
			rc = -ENOMEM;
		goto out;
	}
	r->store = fat_strdup("etcd");
	if (!r->store) {
		rc = -ENOMEM;
		goto out;
	}
	if (fc->leader) {
		r->is_leader = fat_leader_is_me(fc->leader);
		fat_leader_unfence(fc->leader);
		r->leader_fat_id = fat_leader_id(fc->leader);
	}
	req = json_object_new_object();
	if (etcd_call(conn, "/v3/cluster/member/list", req, &list) < 0)
		list = NULL; /* names stay empty; statuses below still say why */
	json_object_put(req);
	n = etcd_conn_endpoints(conn);
	r->members = calloc(n, sizeof(*r->members));
	if (!r->members) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		Pstore__FatMember *m = calloc(1, sizeof(*m));

		if (!m) {
			rc = -ENOMEM;
			break;
		}
		pstore__fat_member__init(m);
		r->members[r->n_members++] = m;
		rc = member_status(conn, i, list, m);
		if (m->revision > r->revision)
			r->revision = m->revision;
	}
out:
	json_object_put(list);
	if (rc < 0) {
		fat_rec_free(r);
		return fat_fail(fc, rc, "cannot build the FAT cluster status");
	}
	*out = r;
	return 0;
}
