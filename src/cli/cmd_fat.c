/*
 * cmd_fat.c - `pstore fat status [--json]`: the FAT cluster as every FAT
 * server of the client config sees it (MSG_FAT_STATUS, asked of each server
 * directly, not through failover): whether it answers, its store (lmdb or
 * etcd), which fatd holds the leader role, and every etcd member with its
 * health, raft leadership, revision and raft index.  Exit status 1 when a
 * FAT server or an etcd member is unhealthy, so scripts can alert on it.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "cli.h"
#include "common.h"
#include "msgtype.h"
#include "xport.h"

#define FAT_STATUS_TIMEOUT_MS 8000

static void fat_usage(FILE *f)
{
	fprintf(f,
		"usage: pstore [-c FILE] fat status [--json]\n"
		"\n"
		"Asks every FAT server of the config (fat = ...) for its view of the FAT\n"
		"cluster: the server's store (lmdb or etcd), which fatd holds the leader\n"
		"role, and each etcd member: health, raft leader, revision, raft index.\n"
		"--json prints {\"servers\": [...], \"members\": [...], \"leader_fat_id\": N,\n"
		"\"revision\": N, \"healthy\": bool}.  Exit status 1 if anything is\n"
		"unhealthy.\n");
}

static json_object *member_json(const Pstore__FatMember *m)
{
	json_object *o = json_object_new_object();
	char id[24];

	snprintf(id, sizeof(id), "%llx", (unsigned long long)m->id);
	json_object_object_add(o, "name", json_object_new_string(m->name));
	json_object_object_add(o, "id", json_object_new_string(m->id ? id : ""));
	json_object_object_add(o, "endpoint", json_object_new_string(m->endpoint));
	json_object_object_add(o, "healthy", json_object_new_boolean(m->healthy));
	json_object_object_add(o, "leader", json_object_new_boolean(m->leader));
	json_object_object_add(o, "revision", json_object_new_int64(m->revision));
	json_object_object_add(o, "raft_index", json_object_new_uint64(m->raft_index));
	json_object_object_add(o, "db_size", json_object_new_uint64(m->db_size));
	json_object_object_add(o, "error", json_object_new_string(m->error));
	return o;
}

static int fat_status(struct cli *c, bool json)
{
	Pstore__Empty req = PSTORE__EMPTY__INIT;
	struct xport_reply reps[CLI_MAX_FAT];
	const Pstore__FatStatusReply *best = NULL;
	json_object *root = json_object_new_object(), *servers = json_object_new_array();
	json_object *members = json_object_new_array();
	bool healthy = true;
	uint32_t leader = 0;
	int64_t revision = 0;
	char errs[CLI_MAX_FAT][256];
	int rcs[CLI_MAX_FAT];

	memset(reps, 0, sizeof(reps));
	for (size_t i = 0; i < c->n_fat; i++) {
		const Pstore__FatStatusReply *r;
		json_object *s = json_object_new_object();

		errs[i][0] = '\0';
		rcs[i] = xport_call(c->pool, c->fat_addrs[i], MSG_FAT_STATUS, &req.base, NULL,
				    0, &pstore__fat_status_reply__descriptor, &reps[i],
				    FAT_STATUS_TIMEOUT_MS, errs[i], sizeof(errs[i]));
		r = rcs[i] == 0 ? (const Pstore__FatStatusReply *)reps[i].msg : NULL;
		if (rcs[i] == 0 && !r)
			rcs[i] = -EBADMSG;
		json_object_object_add(s, "address", json_object_new_string(c->fat_addrs[i]));
		json_object_object_add(s, "up", json_object_new_boolean(r != NULL));
		if (r) {
			json_object_object_add(s, "fat_id", json_object_new_int64(r->fat_id));
			json_object_object_add(s, "store", json_object_new_string(r->store));
			json_object_object_add(s, "is_leader",
					       json_object_new_boolean(r->is_leader));
			json_object_object_add(s, "leader_fat_id",
					       json_object_new_int64(r->leader_fat_id));
			json_object_object_add(s, "revision",
					       json_object_new_int64(r->revision));
			if (r->is_leader)
				leader = r->fat_id;
			else if (!leader)
				leader = r->leader_fat_id;
			if (!best || r->n_members > best->n_members ||
			    (r->n_members == best->n_members && r->revision > best->revision))
				best = r;
			if (r->revision > revision)
				revision = r->revision;
		} else {
			healthy = false;
			json_object_object_add(
			    s, "error",
			    json_object_new_string(errs[i][0] ? errs[i] : strerror(-rcs[i])));
		}
		json_object_array_add(servers, s);
	}
	/* etcd members as the best-informed server sees them */
	for (size_t i = 0; best && i < best->n_members; i++) {
		json_object_array_add(members, member_json(best->members[i]));
		if (!best->members[i]->healthy)
			healthy = false;
	}
	if (best && strcmp(best->store, "etcd") == 0 && leader == 0)
		healthy = false;
	if (json) {
		json_object_object_add(root, "servers", servers);
		json_object_object_add(root, "members", members);
		json_object_object_add(root, "leader_fat_id", json_object_new_int64(leader));
		json_object_object_add(root, "revision", json_object_new_int64(revision));
		json_object_object_add(root, "healthy", json_object_new_boolean(healthy));
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	} else {
		if (leader)
			printf("FAT servers (leader: fat:%u):\n", leader);
		else
			printf("FAT servers (leader: none):\n");
		printf("  %-22s %-6s %-5s %-6s %-8s %s\n", "ADDRESS", "ID", "STORE", "LEADER",
		       "REVISION", "STATE");
		for (size_t i = 0; i < c->n_fat; i++) {
			const Pstore__FatStatusReply *r =
			    (const Pstore__FatStatusReply *)reps[i].msg;

			if (rcs[i] == 0 && r)
				printf("  %-22s %-6u %-5s %-6s %-8lld up\n", c->fat_addrs[i],
				       r->fat_id, r->store, r->is_leader ? "yes" : "-",
				       (long long)r->revision);
			else
				printf("  %-22s %-6s %-5s %-6s %-8s DOWN: %s\n",
				       c->fat_addrs[i], "?", "?", "?", "?",
				       errs[i][0] ? errs[i] : strerror(-rcs[i]));
		}
		if (best && best->n_members > 0) {
			printf("etcd members:\n  %-12s %-28s %-7s %-6s %-9s %-10s %s\n", "NAME",
			       "ENDPOINT", "HEALTH", "LEADER", "REVISION", "RAFT-INDEX",
			       "ERROR");
			for (size_t i = 0; i < best->n_members; i++) {
				const Pstore__FatMember *m = best->members[i];

				printf("  %-12s %-28s %-7s %-6s %-9lld %-10llu %s\n",
				       m->name[0] ? m->name : "?", m->endpoint,
				       m->healthy ? "ok" : "BAD", m->leader ? "yes" : "-",
				       (long long)m->revision,
				       (unsigned long long)m->raft_index, m->error);
			}
		}
		printf("%s\n", healthy ? "healthy" : "NOT healthy");
		json_object_put(servers);
		json_object_put(members);
	}
	json_object_put(root);
	for (size_t i = 0; i < c->n_fat; i++)
		xport_reply_clear(&reps[i]);
	return healthy ? CLI_OK : CLI_FAIL;
}

int cmd_fat(struct cli *c, int argc, char **argv)
{
	bool json = false;
	int rc;

	if (argc < 2 || strcmp(argv[1], "status") != 0) {
		if (argc >= 2 &&
		    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			fat_usage(stdout);
			return CLI_OK;
		}
		fat_usage(stderr);
		return CLI_USAGE;
	}
	argc--;
	argv++;
	rc = cli_opts_json(argc, argv, fat_usage, &json);
	if (rc >= 0)
		return rc;
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	return fat_status(c, json);
}
