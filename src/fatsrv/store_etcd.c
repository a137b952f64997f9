/*
 * store_etcd.c - the FAT store on an etcd cluster (several FAT servers).
 *
 * A transaction reads at one etcd revision (the first read's, so it sees a
 * snapshot), remembers the mod_revision of every key it read (0 = absent)
 * and the ranges it scanned, buffers its puts and deletes (overlaying them
 * on later reads), and commits them as ONE etcd txn whose compares are:
 *   - mod_revision(key) == what was read, for every key read or scanned;
 *   - mod_revision < snapshot+1 over every scanned range (no key appeared
 *     or changed inside it);
 *   - create_revision(fence key) == the fence's (while a leader fence is set).
 * A failed compare means another FAT server changed what this one decided
 * on: commit returns -EAGAIN and fat_store_run() reruns the operation on
 * fresh data.  A commit whose reply was lost is retried on another member;
 * if it had been applied, the compares fail and the rerun sees its result
 * (the FAT logic is idempotent on request ids), so nothing applies twice.
 *
 * Buffered writes and read records live in glibc's tsearch trees (ordered,
 * O(log n)); etcd's limits (--max-txn-ops, --max-request-bytes) bound how
 * big one FAT change may be: pstore-dev and docs/fat-cluster.md raise them.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "etcd.h"
#include "store.h"

#define ETCD_SCAN_PAGE 1000

struct ent {
	uint8_t *key; /* FAT-level key (without the store prefix) */
	size_t klen;
	uint8_t *val;
	size_t vlen;
	int64_t mod;  /* reads: mod_revision seen (0 = absent) */
	bool present; /* reads: key exists; writes: put (true) or delete */
};

struct range {
	uint8_t *from, *to; /* full etcd keys; [from, to) */
	size_t flen, tlen;
};

struct etcd_store {
	struct fat_store base;
	struct etcd_conn *conn;
	uint8_t *prefix;
	size_t plen;
	char *fence_key; /* NULL = no fence */
	int64_t fence_rev;
};

struct etcd_txn {
	struct fat_txn base;
	void *reads, *writes; /* tsearch trees of struct ent */
	size_t n_reads, n_writes;
	int64_t rev; /* snapshot revision, 0 until the first read */
	struct range *ranges;
	size_t n_ranges, cap_ranges;
};

static struct etcd_store *S(struct fat_store *s)
{
	return (struct etcd_store *)s;
}
static struct etcd_txn *T(struct fat_txn *t)
{
	return (struct etcd_txn *)t;
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, MIN(al, bl));

	if (c)
		return c;
	return al < bl ? -1 : al > bl ? 1 : 0;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	return key_cmp(x->key, x->klen, y->key, y->klen);
}

static void ent_free(void *p)
{
	struct ent *e = p;

	free(e->key);
	free(e->val);
	free(e);
}

static struct ent *ent_find(void **tree, const void *key, size_t klen)
{
	struct ent probe = {.key = (uint8_t *)key, .klen = klen};
	struct ent **f = tfind(&probe, tree, ent_cmp);

	return f ? *f : NULL;
}

/* Inserts a new entry (key copied, val taken). */
static int ent_add(void **tree, const void *key, size_t klen, uint8_t *val, size_t vlen,
		   int64_t mod, bool present, struct ent **out)
{
	struct ent *e = calloc(1, sizeof(*e)), **f;

	if (!e || !(e->key = malloc(klen + 1))) {
		free(e);
		free(val);
		return -ENOMEM;
	}
	memcpy(e->key, key, klen);
	e->klen = klen;
	e->val = val;
	e->vlen = vlen;
	e->mod = mod;
	e->present = present;
	f = tsearch(e, tree, ent_cmp);
	if (!f) {
		ent_free(e);
		return -ENOMEM;
	}
	if (*f != e) { /* already there */
		ent_free(e);
		e = *f;
	}
	if (out)
		*out = e;
	return 0;
}

/* prefix + key as one malloc'd buffer */
static uint8_t *full_key(struct etcd_store *s, const void *key, size_t klen, size_t *len)
{
	uint8_t *k = malloc(s->plen + klen + 2);

	if (!k)
		return NULL;
	memcpy(k, s->prefix, s->plen);
	if (klen)
		memcpy(k + s->plen, key, klen);
	*len = s->plen + klen;
	return k;
}

/* The first key after every key starting with p (in place; *len may shrink).
 * false when there is none (p is all 0xff). */
static bool prefix_end(uint8_t *p, size_t *len)
{
	while (*len > 0) {
		if (p[*len - 1] != 0xff) {
			p[*len - 1]++;
			return true;
		}
		(*len)--;
	}
	return false;
}

/* ---- reading ---- */

struct kv {
	uint8_t *key, *val; /* key: FAT-level */
	size_t klen, vlen;
	int64_t mod;
};

static void kv_clear(struct kv *kv)
{
	free(kv->key);
	free(kv->val);
	memset(kv, 0, sizeof(*kv));
}

/* Decodes one of etcd's kvs, stripping the store prefix. */
static int kv_decode(struct etcd_store *s, json_object *o, struct kv *kv)
{
	json_object *k = NULL, *v = NULL;
	uint8_t *fk;
	size_t fl;
	int rc;

	memset(kv, 0, sizeof(*kv));
	json_object_object_get_ex(o, "key", &k);
	json_object_object_get_ex(o, "value", &v);
	rc = etcd_unb64(k, &fk, &fl);
	if (rc < 0)
		return rc;
	if (fl < s->plen || memcmp(fk, s->prefix, s->plen) != 0) {
		free(fk);
		log_err("store: etcd returned a key outside the store prefix");
		return -EIO;
	}
	memmove(fk, fk + s->plen, fl - s->plen);
	kv->key = fk;
	kv->klen = fl - s->plen;
	rc = etcd_unb64(v, &kv->val, &kv->vlen);
	if (rc < 0) {
		kv_clear(kv);
		return rc;
	}
	kv->mod = etcd_i64(o, "mod_revision", 0);
	return 0;
}

/* Range request at the txn's snapshot (taking the snapshot on the first
 * read).  *kvs borrows from *rep. */
static int range_req(struct etcd_txn *t, const uint8_t *from, size_t flen, const uint8_t *to,
		     size_t tlen, int64_t limit, json_object **rep, json_object **kvs,
		     bool *more)
{
	struct etcd_store *s = S(t->base.store);
	json_object *req = json_object_new_object(), *hdr;
	int rc;

	json_object_object_add(req, "key", etcd_b64(from, flen));
	if (to)
		json_object_object_add(req, "range_end", etcd_b64(to, tlen));
	if (limit > 0)
		json_object_object_add(req, "limit", json_object_new_int64(limit));
	if (t->rev > 0)
		json_object_object_add(req, "revision", json_object_new_int64(t->rev));
	rc = etcd_call(s->conn, "/v3/kv/range", req, rep);
	json_object_put(req);
	if (rc < 0)
		return rc == -ETIMEDOUT || rc == -EHOSTUNREACH ? -EIO : rc;
	if (t->rev == 0) {
		if (json_object_object_get_ex(*rep, "header", &hdr))
			t->rev = etcd_i64(hdr, "revision", 0);
		if (t->rev <= 0) {
			json_object_put(*rep);
			*rep = NULL;
			log_err("store: etcd range reply without a revision");
			return -EIO;
		}
	}
	*kvs = NULL;
	if (json_object_object_get_ex(*rep, "kvs", kvs) &&
	    !json_object_is_type(*kvs, json_type_array)) {
		json_object_put(*rep);
		*rep = NULL;
		return -EIO;
	}
	if (more) {
		json_object *m;

		*more =
		    json_object_object_get_ex(*rep, "more", &m) && json_object_get_boolean(m);
	}
	return 0;
}

static int etcd_begin(struct fat_store *s, bool rdonly, struct fat_txn **out)
{
	struct etcd_txn *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->base.store = s;
	t->base.rdonly = rdonly;
	*out = &t->base;
	return 0;
}

static int etcd_get(struct fat_txn *tx, const void *key, size_t klen, const void **val,
		    size_t *vlen)
{
	struct etcd_txn *t = T(tx);
	struct etcd_store *s = S(tx->store);
	struct ent *e = ent_find(&t->writes, key, klen);
	json_object *rep = NULL, *kvs = NULL;
	struct kv kv = {0};
	uint8_t *fk;
	size_t fl;
	int rc;

	if (!e)
		e = ent_find(&t->reads, key, klen);
	if (!e) {
		fk = full_key(s, key, klen, &fl);
		if (!fk)
			return -ENOMEM;
		rc = range_req(t, fk, fl, NULL, 0, 0, &rep, &kvs, NULL);
		free(fk);
		if (rc < 0)
			return rc;
		if (kvs && json_object_array_length(kvs) > 0) {
			rc = kv_decode(s, json_object_array_get_idx(kvs, 0), &kv);
			if (rc == 0 && key_cmp(kv.key, kv.klen, key, klen) != 0)
				rc = -EIO;
		}
		json_object_put(rep);
		if (rc < 0) {
			kv_clear(&kv);
			return rc;
		}
		rc = ent_add(&t->reads, key, klen, kv.val, kv.vlen, kv.mod, kv.key != NULL, &e);
		free(kv.key);
		if (rc < 0)
			return rc;
		t->n_reads++;
	}
	if (!e->present)
		return -ENOENT;
	*val = e->val ? e->val : (const void *)"";
	*vlen = e->vlen;
	return 0;
}

static int etcd_put(struct fat_txn *tx, const void *key, size_t klen, const void *val,
		    size_t vlen)
{
	struct etcd_txn *t = T(tx);
	struct ent *e = ent_find(&t->writes, key, klen);
	uint8_t *v = malloc(vlen + 1);

	if (!v)
		return -ENOMEM;
	if (vlen)
		memcpy(v, val, vlen);
	if (e) {
		free(e->val);
		e->val = v;
		e->vlen = vlen;
		e->present = true;
		return 0;
	}
	t->n_writes++;
	return ent_add(&t->writes, key, klen, v, vlen, 0, true, NULL);
}

static int etcd_del(struct fat_txn *tx, const void *key, size_t klen)
{
	struct etcd_txn *t = T(tx);
	const void *v;
	size_t vl;
	struct ent *e;
	int rc = etcd_get(tx, key, klen, &v, &vl);

	if (rc < 0)
		return rc;
	e = ent_find(&t->writes, key, klen);
	if (e) {
		free(e->val);
		e->val = NULL;
		e->vlen = 0;
		e->present = false;
		return 0;
	}
	t->n_writes++;
	return ent_add(&t->writes, key, klen, NULL, 0, 0, false, NULL);
}

/* ---- scans ---- */

/* The buffered writes in [lo, hi) (FAT-level keys, hi NULL = no bound),
 * in key order: a small vector filled by twalk_r. */
struct wlist {
	struct ent **v;
	size_t n, cap;
	const uint8_t *pfx, *after;
	size_t plen, alen;
	int err;
};

static void wcollect(const void *node, VISIT which, void *arg)
{
	struct wlist *w = arg;
	struct ent *e = *(struct ent *const *)node;

	if (which != postorder && which != leaf)
		return;
	if (e->klen < w->plen || memcmp(e->key, w->pfx, w->plen) != 0)
		return;
	if (w->after && key_cmp(e->key, e->klen, w->after, w->alen) <= 0)
		return;
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 16;
		struct ent **nv = realloc(w->v, nc * sizeof(*nv));

		if (!nv) {
			w->err = -ENOMEM;
			return;
		}
		w->v = nv;
		w->cap = nc;
	}
	w->v[w->n++] = e;
}

struct scanner {
	struct etcd_txn *t;
	uint8_t *start, *end; /* full etcd keys of the range still to fetch */
	size_t slen, elen;
	bool have_end;
	json_object *rep, *kvs;
	size_t i, n;
	bool more, done;
	struct kv cur; /* current etcd kv (valid when cur.key) */
};

/* Advances sc->cur to the next etcd kv, fetching pages as needed. */
static int scanner_next(struct scanner *sc)
{
	struct etcd_store *s = S(sc->t->base.store);
	int rc;

	kv_clear(&sc->cur);
	while (sc->i == sc->n) {
		if (sc->done)
			return 0;
		json_object_put(sc->rep);
		sc->rep = NULL;
		rc = range_req(
		    sc->t, sc->start, sc->slen, sc->have_end ? sc->end : (uint8_t *)"\0",
		    sc->have_end ? sc->elen : 1, ETCD_SCAN_PAGE, &sc->rep, &sc->kvs, &sc->more);
		if (rc < 0)
			return rc;
		sc->i = 0;
		sc->n = sc->kvs ? json_object_array_length(sc->kvs) : 0;
		if (!sc->more || sc->n == 0)
			sc->done = true;
		if (sc->n > 0) {
			/* the next page starts right after this page's last key */
			json_object *k = NULL;
			uint8_t *lk;
			size_t ll;

			json_object_object_get_ex(json_object_array_get_idx(sc->kvs, sc->n - 1),
						  "key", &k);
			rc = etcd_unb64(k, &lk, &ll);
			if (rc < 0)
				return rc;
			free(sc->start);
			sc->start = realloc(lk, ll + 1);
			if (!sc->start) {
				free(lk);
				return -ENOMEM;
			}
			sc->start[ll] = 0;
			sc->slen = ll + 1;
		}
	}
	rc = kv_decode(s, json_object_array_get_idx(sc->kvs, sc->i++), &sc->cur);
	return rc;
}

static int add_range(struct etcd_txn *t, const uint8_t *from, size_t flen, const uint8_t *to,
		     size_t tlen)
{
	struct range *r;

	if (t->n_ranges == t->cap_ranges) {
		size_t nc = t->cap_ranges ? t->cap_ranges * 2 : 8;
		struct range *nr = realloc(t->ranges, nc * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		t->ranges = nr;
		t->cap_ranges = nc;
	}
	r = &t->ranges[t->n_ranges];
	r->from = malloc(flen + 1);
	r->to = malloc(tlen + 1);
	if (!r->from || !r->to) {
		free(r->from);
		free(r->to);
		return -ENOMEM;
	}
	memcpy(r->from, from, flen);
	memcpy(r->to, to, tlen);
	r->flen = flen;
	r->tlen = tlen;
	t->n_ranges++;
	return 0;
}

static int etcd_scan(struct fat_txn *tx, const void *prefix, size_t plen, const void *after,
		     size_t alen, size_t limit, fat_scan_fn fn, void *arg, bool *more)
{
	struct etcd_txn *t = T(tx);
	struct etcd_store *s = S(tx->store);
	struct wlist w = {.pfx = prefix, .plen = plen};
	struct scanner sc = {.t = t};
	uint8_t *first = NULL, *last = NULL;
	size_t flen = 0, llen = 0, wi = 0, n = 0;
	bool stopped = false;
	int rc = 0;

	if (alen == 0)
		after = NULL;
	w.after = after;
	w.alen = alen;
	/* range end: after every key with the prefix */
	sc.end = full_key(s, prefix, plen, &sc.elen);
	if (!sc.end)
		return -ENOMEM;
	sc.have_end = prefix_end(sc.end, &sc.elen);
	/* range start: the prefix, or just after `after` if that is later */
	if (after && key_cmp(after, alen, prefix, plen) >= 0) {
		sc.start = full_key(s, after, alen, &sc.slen);
		if (sc.start)
			sc.start[sc.slen++] = 0;
	} else {
		sc.start = full_key(s, prefix, plen, &sc.slen);
	}
	if (!sc.start) {
		rc = -ENOMEM;
		goto out;
	}
	first = malloc(sc.slen + 1);
	if (!first) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(first, sc.start, sc.slen);
	flen = sc.slen;
	if (sc.have_end && key_cmp(sc.start, sc.slen, sc.end, sc.elen) >= 0)
		sc.done = true; /* `after` is past the prefix: nothing to fetch */
	twalk_r(t->writes, wcollect, &w);
	if (w.err) {
		rc = w.err;
		goto out;
	}
	rc = scanner_next(&sc);
	for (; rc == 0;) {
		struct ent *we = wi < w.n ? w.v[wi] : NULL;
		const uint8_t *k, *v;
		size_t kl, vl;
		int c, r;

		if (!sc.cur.key && !we)
			break;
		if (!sc.cur.key)
			c = 1;
		else if (!we)
			c = -1;
		else
			c = key_cmp(sc.cur.key, sc.cur.klen, we->key, we->klen);
		if (c > 0 || c == 0) {
			/* a buffered write wins over what etcd has */
			wi++;
			if (c == 0 && !tx->rdonly &&
			    !ent_find(&t->reads, sc.cur.key, sc.cur.klen)) {
				rc = ent_add(&t->reads, sc.cur.key, sc.cur.klen, NULL, 0,
					     sc.cur.mod, true, NULL);
				if (rc < 0)
					break;
			}
			if (c == 0) {
				/* keep sc.cur's key alive for the range bookkeeping below */
				rc = scanner_next(&sc);
				if (rc < 0)
					break;
			}
			if (!we->present)
				continue;
			k = we->key;
			kl = we->klen;
			v = we->val;
			vl = we->vlen;
		} else {
			if (!tx->rdonly && !ent_find(&t->reads, sc.cur.key, sc.cur.klen)) {
				uint8_t *vc = malloc(sc.cur.vlen + 1);

				if (!vc) {
					rc = -ENOMEM;
					break;
				}
				memcpy(vc, sc.cur.val ? sc.cur.val : (uint8_t *)"",
				       sc.cur.vlen);
				rc = ent_add(&t->reads, sc.cur.key, sc.cur.klen, vc,
					     sc.cur.vlen, sc.cur.mod, true, NULL);
				if (rc < 0)
					break;
				t->n_reads++;
			}
			k = sc.cur.key;
			kl = sc.cur.klen;
			v = sc.cur.val;
			vl = sc.cur.vlen;
		}
		if (limit > 0 && n == limit) {
			*more = true;
			stopped = true;
			break;
		}
		/* remember the last key handed out (the observed range ends there) */
		free(last);
		last = full_key(s, k, kl, &llen);
		if (!last) {
			rc = -ENOMEM;
			break;
		}
		r = fn(k, kl, v ? v : (const uint8_t *)"", vl, arg);
		n++;
		if (r < 0) {
			rc = r;
			break;
		}
		if (r > 0) {
			stopped = true;
			break;
		}
		if (k == sc.cur.key) {
			rc = scanner_next(&sc);
			if (rc < 0)
				break;
		}
	}
	if (rc == 0 && !tx->rdonly) {
		/* no key may appear in or change inside what this scan saw */
		if (stopped && last) {
			last[llen] = 0;
			rc = add_range(t, first, flen, last, llen + 1);
		} else if (!stopped) {
			rc = add_range(t, first, flen, sc.have_end ? sc.end : (uint8_t *)"\0",
				       sc.have_end ? sc.elen : 1);
		}
	}
out:
	kv_clear(&sc.cur);
	json_object_put(sc.rep);
	free(sc.start);
	free(sc.end);
	free(w.v);
	free(first);
	free(last);
	return rc;
}

/* ---- commit ---- */

struct build {
	struct etcd_store *s;
	json_object *arr;
	int64_t rev;
	int err;
};

static json_object *b64key(struct etcd_store *s, const struct ent *e)
{
	size_t fl;
	uint8_t *fk = full_key(s, e->key, e->klen, &fl);
	json_object *o;

	if (!fk)
		return NULL;
	o = etcd_b64(fk, fl);
	free(fk);
	return o;
}

static void add_compare(const void *node, VISIT which, void *arg)
{
	struct build *b = arg;
	const struct ent *e = *(struct ent *const *)node;
	json_object *c;

	if (which != postorder && which != leaf)
		return;
	c = json_object_new_object();
	json_object_object_add(c, "key", b64key(b->s, e));
	json_object_object_add(c, "target", json_object_new_string("MOD"));
	json_object_object_add(c, "result", json_object_new_string("EQUAL"));
	json_object_object_add(c, "mod_revision",
			       json_object_new_int64(e->present ? e->mod : 0));
	json_object_array_add(b->arr, c);
}

static void add_op(const void *node, VISIT which, void *arg)
{
	struct build *b = arg;
	const struct ent *e = *(struct ent *const *)node;
	json_object *op, *r;

	if (which != postorder && which != leaf)
		return;
	op = json_object_new_object();
	r = json_object_new_object();
	json_object_object_add(r, "key", b64key(b->s, e));
	if (e->present) {
		json_object_object_add(r, "value",
				       etcd_b64(e->val ? e->val : (uint8_t *)"", e->vlen));
		json_object_object_add(op, "request_put", r);
	} else {
		json_object_object_add(op, "request_delete_range", r);
	}
	json_object_array_add(b->arr, op);
}

static void txn_free(struct etcd_txn *t)
{
	tdestroy(t->reads, ent_free);
	tdestroy(t->writes, ent_free);
	for (size_t i = 0; i < t->n_ranges; i++) {
		free(t->ranges[i].from);
		free(t->ranges[i].to);
	}
	free(t->ranges);
	free(t);
}

/* On a failed compare: was it the fence? */
static bool fence_lost(struct etcd_store *s, json_object *rep)
{
	json_object *resps, *r0, *rr, *kvs;

	if (!s->fence_key || !json_object_object_get_ex(rep, "responses", &resps) ||
	    json_object_array_length(resps) < 1)
		return false;
	r0 = json_object_array_get_idx(resps, 0);
	if (!json_object_object_get_ex(r0, "response_range", &rr))
		return false;
	if (!json_object_object_get_ex(rr, "kvs", &kvs) || json_object_array_length(kvs) == 0)
		return true;
	return etcd_i64(json_object_array_get_idx(kvs, 0), "create_revision", 0) !=
	       s->fence_rev;
}

static int etcd_commit(struct fat_txn *tx)
{
	struct etcd_txn *t = T(tx);
	struct etcd_store *s = S(tx->store);
	json_object *req, *cmp, *ops, *fail, *rep = NULL, *ok;
	struct build b = {.s = s};
	int rc;

	if (tx->rdonly || t->n_writes == 0) {
		txn_free(t);
		return 0;
	}
	req = json_object_new_object();
	cmp = json_object_new_array();
	ops = json_object_new_array();
	fail = json_object_new_array();
	b.arr = cmp;
	twalk_r(t->reads, add_compare, &b);
	for (size_t i = 0; i < t->n_ranges; i++) {
		json_object *c = json_object_new_object();

		json_object_object_add(c, "key",
				       etcd_b64(t->ranges[i].from, t->ranges[i].flen));
		json_object_object_add(c, "range_end",
				       etcd_b64(t->ranges[i].to, t->ranges[i].tlen));
		json_object_object_add(c, "target", json_object_new_string("MOD"));
		json_object_object_add(c, "result", json_object_new_string("LESS"));
		json_object_object_add(c, "mod_revision", json_object_new_int64(t->rev + 1));
		json_object_array_add(cmp, c);
	}
	if (s->fence_key) {
		json_object *c = json_object_new_object(), *op = json_object_new_object(),
			    *r = json_object_new_object();

		json_object_object_add(c, "key", etcd_b64(s->fence_key, strlen(s->fence_key)));
		json_object_object_add(c, "target", json_object_new_string("CREATE"));
		json_object_object_add(c, "result", json_object_new_string("EQUAL"));
		json_object_object_add(c, "create_revision",
				       json_object_new_int64(s->fence_rev));
		json_object_array_add(cmp, c);
		json_object_object_add(r, "key", etcd_b64(s->fence_key, strlen(s->fence_key)));
		json_object_object_add(op, "request_range", r);
		json_object_array_add(fail, op);
	}
	b.arr = ops;
	twalk_r(t->writes, add_op, &b);
	json_object_object_add(req, "compare", cmp);
	json_object_object_add(req, "success", ops);
	json_object_object_add(req, "failure", fail);
	rc = etcd_call(s->conn, "/v3/kv/txn", req, &rep);
	json_object_put(req);
	txn_free(t);
	if (rc < 0) {
		log_err("store: etcd txn failed: %s", strerror(-rc));
		return rc == -ETIMEDOUT || rc == -EHOSTUNREACH ? -EIO : rc;
	}
	if (json_object_object_get_ex(rep, "succeeded", &ok) && json_object_get_boolean(ok))
		rc = 0;
	else if (fence_lost(s, rep))
		rc = -ESTALE;
	else
		rc = -EAGAIN;
	json_object_put(rep);
	return rc;
}

static void etcd_abort(struct fat_txn *tx)
{
	txn_free(T(tx));
}

static void etcd_close(struct fat_store *st)
{
	struct etcd_store *s = S(st);

	etcd_conn_free(s->conn);
	free(s->prefix);
	free(s->fence_key);
	free(s);
}

static const struct fat_store_ops etcd_ops = {
    .name = "etcd",
    .begin = etcd_begin,
    .get = etcd_get,
    .put = etcd_put,
    .del = etcd_del,
    .scan = etcd_scan,
    .commit = etcd_commit,
    .abort = etcd_abort,
    .close = etcd_close,
};

int fat_store_open_etcd(struct etcd_conn *conn, const char *prefix, struct fat_store **out)
{
	struct etcd_store *s;
	json_object *req, *rep = NULL;
	int rc;

	*out = NULL;
	if (!prefix || !prefix[0] || strlen(prefix) > 256) {
		etcd_conn_free(conn);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->prefix = (uint8_t *)strdup(prefix))) {
		free(s);
		etcd_conn_free(conn);
		return -ENOMEM;
	}
	s->plen = strlen(prefix);
	s->conn = conn;
	s->base.ops = &etcd_ops;
	s->base.max_key = 2048;
	s->base.max_val = 8u << 20; /* base64 of it stays below a 16 MiB request */
	/* reach the cluster once, so a wrong address or certificate shows now */
	req = json_object_new_object();
	rc = etcd_call(conn, "/v3/maintenance/status", req, &rep);
	json_object_put(req);
	json_object_put(rep);
	if (rc < 0) {
		log_err("store: cannot reach etcd at %s: %s", etcd_conn_endpoint(conn, 0),
			strerror(-rc));
		etcd_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}

struct etcd_conn *fat_store_etcd_conn(struct fat_store *s)
{
	return s && s->ops == &etcd_ops ? S(s)->conn : NULL;
}

int fat_store_etcd_key(struct fat_store *st, const char *key, char *buf, size_t size)
{
	struct etcd_store *s = S(st);

	if (st->ops != &etcd_ops || s->plen + strlen(key) + 1 > size)
		return -EINVAL;
	memcpy(buf, s->prefix, s->plen);
	strcpy(buf + s->plen, key);
	return 0;
}

int fat_store_etcd_fence(struct fat_store *st, const char *key, int64_t rev)
{
	struct etcd_store *s = S(st);

	if (st->ops != &etcd_ops)
		return -EINVAL;
	free(s->fence_key);
	s->fence_key = NULL;
	if (!key)
		return 0;
	s->fence_key = strdup(key);
	if (!s->fence_key)
		return -ENOMEM;
	s->fence_rev = rev;
	return 0;
}
