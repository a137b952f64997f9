/*
 * test_authz.c - certificate roles (xport_peer_role) and read capabilities
 * (cap_read_sign/verify): round trip, forgery, and that write tokens and
 * read tokens never pass for each other.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk.h"
#include "xport.h"

static void test_roles(void **state)
{
	const char *id = NULL;

	(void)state;
	assert_int_equal(xport_peer_role("vendor:3", &id), XPORT_ROLE_VENDOR);
	assert_string_equal(id, "3");
	assert_int_equal(xport_peer_role("client:alice", &id), XPORT_ROLE_CLIENT);
	assert_string_equal(id, "alice");
	assert_int_equal(xport_peer_role("admin:root", NULL), XPORT_ROLE_ADMIN);
	assert_int_equal(xport_peer_role("fat:1", NULL), XPORT_ROLE_FAT);
	assert_true(xport_peer_role("client:", NULL) < 0);
	assert_true(xport_peer_role("client", NULL) < 0);
	assert_true(xport_peer_role(":x", NULL) < 0);
	assert_true(xport_peer_role("clients:x", NULL) < 0);
	assert_true(xport_peer_role("clien:x", NULL) < 0);
	assert_true(xport_peer_role("etcd:1", NULL) < 0);
	assert_true(xport_peer_role("", NULL) < 0);
	assert_true(xport_peer_role(NULL, NULL) < 0);
	assert_string_equal(xport_role_name(XPORT_ROLE_ADMIN), "admin");
	assert_string_equal(xport_role_name(-13), "none");
}

static struct cap_key *new_key(void)
{
	char path[] = "/tmp/test_authz_XXXXXX";
	int fd = mkstemp(path);
	struct cap_key *k;

	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	k = cap_key_load(path, true);
	unlink(path);
	assert_non_null(k);
	return k;
}

static void test_read_caps(void **state)
{
	struct cap_key *fat = new_key(), *other = new_key();
	struct cap_read r = {.expiry_ms = 12345}, got;
	struct cap_token t = {.vendor_id = 1, .lease_id = 2, .byte_limit = 3, .expiry_ms = 4};
	uint8_t *tok = NULL, *wtok = NULL;
	size_t len = 0, wlen = 0;

	(void)state;
	memset(r.volume, 0xab, sizeof(r.volume));
	strcpy(r.client, "client:alice");
	assert_int_equal(cap_read_sign(fat, &r, &tok, &len), 0);
	assert_int_equal(cap_read_verify(fat, tok, len, &got), 0);
	assert_memory_equal(got.volume, r.volume, CHUNK_OWNER_LEN);
	assert_string_equal(got.client, "client:alice");
	assert_int_equal(got.expiry_ms, 12345);
	/* another key's signature, a flipped byte anywhere */
	assert_int_equal(cap_read_verify(other, tok, len, &got), -EACCES);
	for (size_t i = 0; i < len; i++) {
		tok[i] ^= 0x01;
		assert_true(cap_read_verify(fat, tok, len, &got) < 0);
		tok[i] ^= 0x01;
	}
	assert_int_equal(cap_read_verify(fat, tok, CAP_READ_TOKEN_MAX + 1, &got), -EBADMSG);
	/* a write token is no read token, and the other way round */
	memcpy(t.owner, r.volume, CHUNK_OWNER_LEN);
	assert_int_equal(cap_token_sign(fat, &t, &wtok, &wlen), 0);
	assert_int_equal(cap_read_verify(fat, wtok, wlen, &got), -EBADMSG);
	assert_true(cap_token_verify(fat, tok, len, &t) < 0);
	free(tok);
	free(wtok);
	cap_key_free(fat);
	cap_key_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_read_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
