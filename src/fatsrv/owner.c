/*
 * owner.c - which user may use which volume.  A volume belongs to the peer
 * that created it: MSG_VOLUME_CREATE records the creator's certificate CN
 * ("client:alice") in VolumeInfo.owner, whatever the request said.  Every
 * later request naming a volume (a `volume` field, or VolumeGet's `name`)
 * from a client: peer is refused with EACCES unless that peer is the owner;
 * admin: peers may use every volume.  Volume listings show a client only its
 * own volumes.  Volumes without an owner (made before owners existed) are
 * admin-only.  Role checks (vendor vs client) are dispatch.c's; this file
 * only looks at client requests.
 *
 * Ownership never changes after creation, so checking it in a read of its
 * own before the operation's transaction leaves no race.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"
#include "xport.h"

/* The volume a request names, or NULL. */
static const char *request_volume(const struct xport_req *req, const ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *f;

	f = protobuf_c_message_descriptor_get_field_by_name(
	    msg->descriptor, req->type == MSG_VOLUME_GET ? "name" : "volume");
	if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(const char *const *)((const uint8_t *)msg + f->offset);
}

static bool owner_is(const Pstore__VolumeInfo *vi, const char *peer)
{
	return vi->owner && vi->owner[0] && strcmp(vi->owner, peer) == 0;
}

int fat_owner_check(struct fat_ctx *fc, const struct xport_req *req, ProtobufCMessage *msg)
{
	Pstore__VolumeInfo *vi = NULL;
	const char *id, *name;
	int role = xport_peer_role(req->peer, &id);
	int rc;

	if (role != XPORT_ROLE_CLIENT && role != XPORT_ROLE_ADMIN)
		return 0; /* not a volume user: dispatch.c decides */
	if (req->type == MSG_VOLUME_CREATE) {
		Pstore__VolumeInfo *in = (Pstore__VolumeInfo *)msg;
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(
			&pstore__volume_info__descriptor, "owner");
		char *owner = fat_strdup(req->peer);

		if (!owner || !f)
			return fat_fail(fc, -ENOMEM, "out of memory");
		if (in->owner && in->owner != (char *)f->default_value)
			free(in->owner);
		in->owner = owner;
		return 0;
	}
	if (role == XPORT_ROLE_ADMIN)
		return 0;
	name = request_volume(req, msg);
	if (!name || !*name)
		return 0; /* not about one volume */
	rc = fat_volume_get(fc, name, &vi);
	if (rc == -ENOENT || rc == -EINVAL) {
		fc->err[0] = '\0';
		return 0; /* the operation itself reports it */
	}
	if (rc < 0)
		return rc;
	if (!owner_is(vi, req->peer)) {
		rc = fat_fail(fc, -EACCES, "volume %s belongs to another user", name);
		log_warn("%s (%s) refused access to volume %s (owner %s)", req->peer,
			 req->peer_addr, name, vi->owner && vi->owner[0] ? vi->owner : "none");
	}
	fat_rec_free(vi);
	return rc;
}

void fat_owner_filter_list(const struct xport_req *req, Pstore__VolumeList *list)
{
	size_t keep = 0;

	if (!list || xport_peer_role(req->peer, NULL) == XPORT_ROLE_ADMIN)
		return;
	for (size_t i = 0; i < list->n_volumes; i++) {
		if (owner_is(list->volumes[i], req->peer))
			list->volumes[keep++] = list->volumes[i];
		else
			fat_rec_free(list->volumes[i]);
	}
	list->n_volumes = keep;
}

int fat_owner_read_token(struct fat_ctx *fc, const struct xport_req *req,
			 Pstore__VolumeInfo *vi)
{
	struct cap_read r;
	uint8_t *tok = NULL;
	size_t len = 0;
	int rc;

	if (!vi || vi->id.len != CHUNK_OWNER_LEN)
		return 0;
	memset(&r, 0, sizeof(r));
	if (strlen(req->peer) >= sizeof(r.client))
		return fat_fail(fc, -EINVAL, "certificate CN too long");
	memcpy(r.volume, vi->id.data, CHUNK_OWNER_LEN);
	strcpy(r.client, req->peer);
	r.expiry_ms = fc->clock() + FAT_READ_TOKEN_MS;
	rc = cap_read_sign(fc->key, &r, &tok, &len);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot sign a read capability");
	free(vi->read_token.data);
	vi->read_token.data = tok;
	vi->read_token.len = len;
	return 0;
}
