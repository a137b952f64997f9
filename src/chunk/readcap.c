/*
 * readcap.c - read capabilities: the FAT server's signed statement that a
 * client (certificate CN) may read the chunks of one volume until a time.
 * Encoded as pstore.SignedToken over a pstore.ReadCap, whose field numbers
 * differ from CapToken's so a write token never passes as a read token nor
 * the other way round.  The vendor's comparison of the fields with the
 * request is src/vendor's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "common.h"
#include "pstore.pb-c.h"

#define READCAP_BODY_MAX 256

int cap_read_sign(const struct cap_key *k, const struct cap_read *r, uint8_t **out,
		  size_t *out_len)
{
	Pstore__ReadCap rc_msg = PSTORE__READ_CAP__INIT;
	Pstore__SignedToken st = PSTORE__SIGNED_TOKEN__INIT;
	uint8_t body[READCAP_BODY_MAX], sig[64];
	size_t blen;
	int rc;

	if (strnlen(r->client, sizeof(r->client)) >= sizeof(r->client))
		return -EINVAL;
	rc_msg.volume_id.data = (uint8_t *)r->volume;
	rc_msg.volume_id.len = CHUNK_OWNER_LEN;
	rc_msg.client = (char *)r->client;
	rc_msg.expiry_ms = r->expiry_ms;
	blen = pstore__read_cap__get_packed_size(&rc_msg);
	if (blen > sizeof(body))
		return -EMSGSIZE;
	pstore__read_cap__pack(&rc_msg, body);
	rc = cap_key_sign_raw(k, body, blen, sig);
	if (rc < 0)
		return rc;
	st.body.data = body;
	st.body.len = blen;
	st.sig.data = sig;
	st.sig.len = sizeof(sig);
	*out_len = pstore__signed_token__get_packed_size(&st);
	*out = malloc(*out_len);
	if (!*out)
		return -ENOMEM;
	pstore__signed_token__pack(&st, *out);
	return 0;
}

int cap_read_verify(const struct cap_key *k, const void *buf, size_t len, struct cap_read *r)
{
	Pstore__SignedToken *st = NULL;
	Pstore__ReadCap *rc_msg = NULL;
	int rc = -EBADMSG;

	if (!buf || len == 0 || len > CAP_READ_TOKEN_MAX)
		return -EBADMSG;
	st = pstore__signed_token__unpack(NULL, len, buf);
	if (!st || st->sig.len != 64 || st->body.len == 0 || st->body.len > READCAP_BODY_MAX)
		goto out;
	rc = cap_key_verify_raw(k, st->body.data, st->body.len, st->sig.data);
	if (rc < 0)
		goto out;
	rc = -EBADMSG;
	rc_msg = pstore__read_cap__unpack(NULL, st->body.len, st->body.data);
	if (!rc_msg || rc_msg->volume_id.len != CHUNK_OWNER_LEN || !rc_msg->client ||
	    !rc_msg->client[0] || strlen(rc_msg->client) >= sizeof(r->client))
		goto out;
	memcpy(r->volume, rc_msg->volume_id.data, CHUNK_OWNER_LEN);
	strcpy(r->client, rc_msg->client);
	r->expiry_ms = rc_msg->expiry_ms;
	rc = 0;
out:
	if (rc_msg)
		pstore__read_cap__free_unpacked(rc_msg, NULL);
	if (st)
		pstore__signed_token__free_unpacked(st, NULL);
	return rc;
}
