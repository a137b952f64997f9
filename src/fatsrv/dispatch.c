/*
 * dispatch.c - turns frames into FAT operations: checks the message type,
 * who sent it (the peer certificate's CN), decodes the control message,
 * calls the logic and replies exactly once.
 *
 * Authorization: MSG_VENDOR_REGISTER/HEARTBEAT only from "vendor:<id>"
 * peers whose id is the vendor_id they report; every other FAT message from
 * "client:" or "admin:" peers (so vendors never read a volume's FAT), and a
 * client only on volumes it owns (owner.c).
 */
#include <errno.h>
#include <string.h>

#include "common.h"
#include "etcd.h"
#include "fatsrv.h"
#include "xport.h"

int fat_peer_split(const char *peer, char *role, size_t rlen, const char **id)
{
	const char *colon = strchr(peer, ':');
	size_t n;

	if (!colon)
		return -EACCES;
	n = (size_t)(colon - peer);
	if (n == 0 || n >= rlen || colon[1] == '\0')
		return -EACCES;
	memcpy(role, peer, n);
	role[n] = '\0';
	*id = colon + 1;
	return 0;
}

static void reply_err(struct fat_ctx *fc, struct xport_req *req, int rc)
{
	int code = rc < 0 ? -rc : EIO;

	if (code == EIO || code == ENOMEM || code == ENOSPC)
		log_warn("request %u from %s failed: %s", req->type, req->peer,
			 fc->err[0] ? fc->err : strerror(code));
	else
		log_debug("request %u from %s: %s", req->type, req->peer,
			  fc->err[0] ? fc->err : strerror(code));
	xport_reply_error(req, code, "%s", fc->err[0] ? fc->err : strerror(code));
}

static void reply_msg(struct fat_ctx *fc, struct xport_req *req, int rc, void *msg)
{
	if (rc < 0) {
		reply_err(fc, req, rc);
		return;
	}
	xport_reply(req, msg, NULL, 0);
	fat_rec_free(msg);
}

static const ProtobufCMessageDescriptor *request_desc(uint16_t type)
{
	switch (type) {
	case MSG_VENDOR_REGISTER:
	case MSG_VENDOR_HEARTBEAT:
		return &pstore__vendor_hello__descriptor;
	case MSG_VOLUME_CREATE:
		return &pstore__volume_info__descriptor;
	case MSG_VOLUME_GET:
		return &pstore__volume_get__descriptor;
	case MSG_VOLUME_KEY_SET:
		return &pstore__volume_key_set__descriptor;
	case MSG_VOLUME_LIST:
	case MSG_VENDOR_LIST:
	case MSG_STATFS:
	case MSG_FAT_STATUS:
		return &pstore__empty__descriptor;
	case MSG_ALLOC:
		return &pstore__alloc_request__descriptor;
	case MSG_LEASE_RENEW:
		return &pstore__lease_renew__descriptor;
	case MSG_COMMIT:
		return &pstore__commit_request__descriptor;
	case MSG_META_LIST:
	case MSG_CHUNK_LIST:
		return &pstore__list_request__descriptor;
	case MSG_REPORT_BAD:
		return &pstore__bad_replica__descriptor;
	case MSG_WRITER_ACQUIRE:
	case MSG_WRITER_RELEASE:
		return &pstore__writer_lease__descriptor;
	default:
		return NULL;
	}
}

/* 0 if the peer may send this type; fills fc->err otherwise. */
static int authorize(struct fat_ctx *fc, const struct xport_req *req,
		     const ProtobufCMessage *msg)
{
	char role[32];
	const char *id;
	uint64_t n;

	if (fat_peer_split(req->peer, role, sizeof(role), &id) < 0)
		return fat_fail(fc, -EACCES, "certificate CN '%.64s' is not <role>:<id>",
				req->peer);
	if (req->type == MSG_VENDOR_REGISTER || req->type == MSG_VENDOR_HEARTBEAT) {
		const Pstore__VendorHello *h = (const Pstore__VendorHello *)msg;

		if (strcmp(role, "vendor") != 0)
			return fat_fail(fc, -EACCES, "only vendors may register");
		if (parse_u64(id, &n) < 0 || n != h->vendor_id)
			return fat_fail(fc, -EACCES,
					"certificate %s may not speak for vendor %u", req->peer,
					h->vendor_id);
		return 0;
	}
	if (strcmp(role, "client") != 0 && strcmp(role, "admin") != 0)
		return fat_fail(fc, -EACCES, "%s may not use this request", role);
	return 0;
}

static void handle(struct fat_ctx *fc, struct xport_req *req, ProtobufCMessage *msg)
{
	void *out = NULL;
	int rc;

	switch (req->type) {
	case MSG_VENDOR_REGISTER:
	case MSG_VENDOR_HEARTBEAT:
		rc = fat_vendor_hello(fc, (Pstore__VendorHello *)msg,
				      (Pstore__VendorHelloReply **)&out);
		break;
	case MSG_VOLUME_CREATE:
		rc = fat_volume_create(fc, (Pstore__VolumeInfo *)msg,
				       (Pstore__VolumeInfo **)&out);
		if (rc == 0 && (rc = fat_owner_read_token(fc, req, out)) < 0) {
			fat_rec_free(out);
			out = NULL;
		}
		break;
	case MSG_VOLUME_GET:
		rc = fat_volume_get(fc, ((Pstore__VolumeGet *)msg)->name,
				    (Pstore__VolumeInfo **)&out);
		if (rc == 0 && (rc = fat_owner_read_token(fc, req, out)) < 0) {
			fat_rec_free(out);
			out = NULL;
		}
		break;
	case MSG_VOLUME_KEY_SET:
		rc = fat_volume_key_set(fc, (Pstore__VolumeKeySet *)msg,
					(Pstore__VolumeInfo **)&out);
		break;
	case MSG_VOLUME_LIST:
		rc = fat_volume_list(fc, (Pstore__VolumeList **)&out);
		if (rc == 0)
			fat_owner_filter_list(req, out);
		break;
	case MSG_ALLOC:
		rc = fat_alloc(fc, (Pstore__AllocRequest *)msg, (Pstore__AllocReply **)&out);
		break;
	case MSG_LEASE_RENEW:
		rc =
		    fat_lease_renew(fc, (Pstore__LeaseRenew *)msg, (Pstore__AllocReply **)&out);
		break;
	case MSG_COMMIT:
		rc = fat_commit(fc, (Pstore__CommitRequest *)msg, (Pstore__CommitReply **)&out);
		break;
	case MSG_META_LIST:
		rc = fat_meta_list(fc, (Pstore__ListRequest *)msg,
				   (Pstore__MetaListReply **)&out);
		break;
	case MSG_CHUNK_LIST:
		rc = fat_chunk_list(fc, (Pstore__ListRequest *)msg,
				    (Pstore__ChunkListReply **)&out);
		break;
	case MSG_VENDOR_LIST:
		rc = fat_vendor_list(fc, (Pstore__VendorListReply **)&out);
		break;
	case MSG_STATFS:
		rc = fat_statfs(fc, (Pstore__StatfsReply **)&out);
		break;
	case MSG_FAT_STATUS:
		rc = fat_cluster_status(fc, (Pstore__FatStatusReply **)&out);
		break;
	case MSG_WRITER_ACQUIRE:
	case MSG_WRITER_RELEASE:
		rc = fat_writer_lease(fc, (Pstore__WriterLease *)msg, req->peer,
				      req->type == MSG_WRITER_RELEASE,
				      (Pstore__WriterLeaseReply **)&out);
		break;
	case MSG_REPORT_BAD: {
		Pstore__Empty empty = PSTORE__EMPTY__INIT;

		rc = fat_report_bad(fc, (Pstore__BadReplica *)msg);
		if (rc == 0) {
			xport_reply(req, &empty.base, NULL, 0);
			return;
		}
		break;
	}
	default:
		rc = fat_fail(fc, -EOPNOTSUPP, "message type %u not supported", req->type);
		break;
	}
	reply_msg(fc, req, rc, out);
}

void fat_dispatch(struct xport_req *req, void *arg)
{
	struct fat_ctx *fc = arg;
	const ProtobufCMessageDescriptor *desc = request_desc(req->type);
	ProtobufCMessage *msg;
	int rc;

	fc->err[0] = '\0';
	if (!desc) {
		xport_reply_error(req, EOPNOTSUPP,
				  "message type %u not supported by pstore-fatd", req->type);
		return;
	}
	if (req->data_len != 0) {
		xport_reply_error(req, EBADMSG, "unexpected data part");
		return;
	}
	msg = xport_req_unpack(req, desc);
	if (!msg) {
		xport_reply_error(req, EBADMSG, "undecodable %s", desc->short_name);
		return;
	}
	rc = authorize(fc, req, msg);
	if (rc == 0)
		rc = fat_owner_check(fc, req, msg);
	if (rc < 0) {
		log_warn("refused request %u from %s (%s): %s", req->type, req->peer,
			 req->peer_addr, fc->err);
		xport_reply_error(req, EACCES, "%s", fc->err);
	} else {
		handle(fc, req, msg);
	}
	protobuf_c_message_free_unpacked(msg, NULL);
}
