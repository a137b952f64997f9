/*
 * cmd_ca.c - `pstore ca init|issue|revoke|list|crl`: the deployment's own
 * certificate authority.  Every pstore process presents a certificate from
 * it whose subject CN is "<role>:<id>" (fat:1, vendor:3, client:alice,
 * admin:root); daemons authorize requests by that role and id, and refuse
 * certificates listed in the CA's CRL (config key `crl` under [tls]).
 *
 * The CA directory (--dir, else $PSTORE_CA_DIR, else /etc/pstore/ca):
 *   ca.key         the CA's private key (0600; keep this directory offline)
 *   ca.crt         the CA certificate, given to every process as [tls] ca
 *   crl.pem        the CRL, given to every daemon as [tls] crl
 *   crlnumber      the number of the last CRL made
 *   revoked        one line per revoked certificate: SERIAL EPOCH
 *   issued/SERIAL.crt  a copy of every certificate issued (for list/revoke)
 * The cryptography is ca_x509.c's.  No network, no client config.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "ca.h"
#include "cli.h"
#include "common.h"

#define CA_DEFAULT_DIR "/etc/pstore/ca"
#define CA_MAX_REVOKED 100000
#define CA_MAX_DAYS 36500u

struct ca_paths {
	char dir[PATH_MAX];
	char key[PATH_MAX];
	char crt[PATH_MAX];
	char crl[PATH_MAX];
	char crlnumber[PATH_MAX];
	char revoked[PATH_MAX];
	char issued[PATH_MAX];
};

static void ca_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pstore ca init [--dir D] [--name NAME] [--algo p256|ed25519] [--days N]\n"
	    "       pstore ca issue --role fat|vendor|client|admin|etcd --id ID [--out "
	    "PREFIX]\n"
	    "                       [--san SAN] [--algo p256|ed25519] [--days N] [--dir D]\n"
	    "       pstore ca revoke SERIAL|CERT.crt [--dir D] [--crl-days N]\n"
	    "       pstore ca list [--json] [--dir D]\n"
	    "       pstore ca crl [--crl-days N] [--dir D]\n"
	    "\n"
	    "The deployment CA.  Certificates name their holder as CN=<role>:<id>; fat\n"
	    "and vendor ids are positive integers, client and admin ids are user names\n"
	    "([A-Za-z0-9._-], at most 64).  issue writes PREFIX.crt and PREFIX.key (mode\n"
	    "0600; default PREFIX ./<role>-<id>).  revoke adds a certificate to the CRL\n"
	    "(DIR/crl.pem) that daemons load from `[tls] crl = PATH`: copy it to every\n"
	    "host; daemons reload it when it changes and on SIGHUP.  `ca crl` re-signs\n"
	    "the CRL (do it before it expires: a daemon refuses every peer once its CRL\n"
	    "has expired).  The CA directory defaults to $PSTORE_CA_DIR, else\n" CA_DEFAULT_DIR
	    ".\n"
	    "Defaults: --algo p256, --days 3650 (CA) or 825 (certificates), --crl-days 365.\n");
}

static int ca_paths_init(struct ca_paths *p, const char *dir)
{
	const char *env = getenv("PSTORE_CA_DIR");

	if (!dir)
		dir = env && *env ? env : CA_DEFAULT_DIR;
	memset(p, 0, sizeof(*p));
	if (strlen(dir) + 32 >= sizeof(p->dir)) {
		fprintf(stderr, "pstore ca: directory name too long\n");
		return -ENAMETOOLONG;
	}
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->key, sizeof(p->key), "%s/ca.key", dir);
	snprintf(p->crt, sizeof(p->crt), "%s/ca.crt", dir);
	snprintf(p->crl, sizeof(p->crl), "%s/crl.pem", dir);
	snprintf(p->crlnumber, sizeof(p->crlnumber), "%s/crlnumber", dir);
	snprintf(p->revoked, sizeof(p->revoked), "%s/revoked", dir);
	snprintf(p->issued, sizeof(p->issued), "%s/issued", dir);
	return 0;
}

static int parse_days(const char *s, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v == 0 || v > CA_MAX_DAYS) {
		fprintf(stderr, "pstore ca: bad number of days '%s' (1..%u)\n", s, CA_MAX_DAYS);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_algo(const char *s, enum ca_algo *out)
{
	if (strcmp(s, "p256") == 0 || strcmp(s, "P-256") == 0)
		*out = CA_ALGO_P256;
	else if (strcmp(s, "ed25519") == 0 || strcmp(s, "Ed25519") == 0)
		*out = CA_ALGO_ED25519;
	else {
		fprintf(stderr, "pstore ca: unknown --algo '%s' (p256 or ed25519)\n", s);
		return -EINVAL;
	}
	return 0;
}

/* Upper-case hex without separators or leading zeros ("0x", ':' allowed). */
static int normalize_serial(const char *in, char *out, size_t len)
{
	size_t n = 0;

	if (in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
		in += 2;
	for (; *in; in++) {
		char ch = *in;

		if (ch == ':')
			continue;
		if (ch >= 'a' && ch <= 'f')
			ch = (char)(ch - 'a' + 'A');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F')))
			return -EINVAL;
		if (n == 0 && ch == '0')
			continue;
		if (n + 1 >= len)
			return -EINVAL;
		out[n++] = ch;
	}
	if (n == 0)
		return -EINVAL;
	out[n] = '\0';
	return 0;
}

/* The revoked list; *out malloc'd (may be NULL when *n == 0). */
static int revoked_load(const struct ca_paths *p, struct ca_revoked **out, size_t *n)
{
	FILE *f = fopen(p->revoked, "r");
	struct ca_revoked *v = NULL;
	size_t cap = 0, cnt = 0;
	char line[256];
	int lineno = 0;

	*out = NULL;
	*n = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		char serial[CA_SERIAL_MAX];
		long long when;

		lineno++;
		if (line[0] == '\n' || line[0] == '#')
			continue;
		if (sscanf(line, "%79s %lld", serial, &when) != 2 || when < 0 ||
		    cnt >= CA_MAX_REVOKED) {
			fprintf(stderr, "pstore ca: %s:%d: bad line\n", p->revoked, lineno);
			goto bad;
		}
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct ca_revoked *nv = realloc(v, ncap * sizeof(*v));

			if (!nv)
				goto bad;
			v = nv;
			cap = ncap;
		}
		if (normalize_serial(serial, v[cnt].serial, sizeof(v[cnt].serial)) < 0) {
			fprintf(stderr, "pstore ca: %s:%d: bad serial\n", p->revoked, lineno);
			goto bad;
		}
		v[cnt++].when = when;
	}
	fclose(f);
	*out = v;
	*n = cnt;
	return 0;
bad:
	fclose(f);
	free(v);
	return -EINVAL;
}

static bool revoked_has(const struct ca_revoked *v, size_t n, const char *serial)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].serial, serial) == 0)
			return true;
	return false;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	char tmp[PATH_MAX + 8];
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	rc = write_full(fd, text, strlen(text));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

struct ca {
	struct ca_paths p;
	X509 *crt;
	EVP_PKEY *key;
};

static void ca_close(struct ca *ca)
{
	X509_free(ca->crt);
	EVP_PKEY_free(ca->key);
	ca->crt = NULL;
	ca->key = NULL;
}

static int ca_open(struct ca *ca, const char *dir)
{
	memset(ca, 0, sizeof(*ca));
	if (ca_paths_init(&ca->p, dir) < 0)
		return -EINVAL;
	if (access(ca->p.crt, R_OK) != 0) {
		fprintf(stderr, "pstore ca: no CA in %s (run `pstore ca init --dir %s`)\n",
			ca->p.dir, ca->p.dir);
		return -ENOENT;
	}
	ca->crt = ca_cert_read(ca->p.crt);
	ca->key = ca->crt ? ca_key_read(ca->p.key) : NULL;
	if (!ca->crt || !ca->key) {
		ca_close(ca);
		return -EINVAL;
	}
	if (X509_check_private_key(ca->crt, ca->key) != 1) {
		fprintf(stderr, "pstore ca: %s does not match %s\n", ca->p.key, ca->p.crt);
		ca_close(ca);
		return -EINVAL;
	}
	return 0;
}

/* Re-signs the CRL from the revoked list with the next CRL number. */
static int ca_make_crl(struct ca *ca, unsigned days)
{
	struct ca_revoked *rev = NULL;
	size_t n = 0;
	uint64_t number = 0;
	char *text = NULL, buf[32];
	int rc;

	rc = revoked_load(&ca->p, &rev, &n);
	if (rc < 0)
		return rc;
	if (read_file(ca->p.crlnumber, 64, &text, NULL) == 0) {
		char *nl = strchr(text, '\n');

		if (nl)
			*nl = '\0';
		if (parse_u64(text, &number) < 0)
			number = 0;
		free(text);
	}
	number++;
	rc = ca_crl_write(ca->crt, ca->key, rev, n, number, days, ca->p.crl);
	if (rc == 0) {
		snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)number);
		rc = write_text(ca->p.crlnumber, buf, 0644);
	}
	free(rev);
	return rc;
}

static int ca_init(const char *dir, const char *name, enum ca_algo algo, unsigned days,
		   unsigned crl_days)
{
	struct ca ca;
	char cn[128];
	int rc = -EIO;

	memset(&ca, 0, sizeof(ca));
	if (ca_paths_init(&ca.p, dir) < 0)
		return CLI_USAGE;
	if (access(ca.p.key, F_OK) == 0 || access(ca.p.crt, F_OK) == 0) {
		fprintf(stderr,
			"pstore ca: %s already holds a CA (ca.key/ca.crt); refusing to "
			"overwrite it\n",
			ca.p.dir);
		return CLI_FAIL;
	}
	if (mkdir_p(ca.p.dir, 0700) < 0 || chmod(ca.p.dir, 0700) < 0 ||
	    mkdir_p(ca.p.issued, 0700) < 0) {
		fprintf(stderr, "pstore ca: cannot create %s: %s\n", ca.p.dir, strerror(errno));
		return CLI_FAIL;
	}
	snprintf(cn, sizeof(cn), "pstore CA %s", name);
	ca.key = ca_key_new(algo);
	if (!ca.key)
		goto out;
	ca.crt = ca_make_root(ca.key, cn, days);
	if (!ca.crt)
		goto out;
	/* The key first: a ca.crt without its key would block a retry. */
	rc = ca_key_write(ca.key, ca.p.key);
	if (rc == 0)
		rc = ca_cert_write(ca.crt, ca.p.crt);
	if (rc == 0)
		rc = ca_make_crl(&ca, crl_days);
	if (rc == 0)
		printf(
		    "CA '%s' (%s) created in %s: ca.crt, ca.key (keep it private), crl.pem\n",
		    cn, algo == CA_ALGO_ED25519 ? "Ed25519" : "P-256", ca.p.dir);
out:
	ca_close(&ca);
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

static bool id_is_name(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static int check_role_id(const char *role, const char *id)
{
	uint64_t n;

	if (strcmp(role, "fat") == 0 || strcmp(role, "vendor") == 0) {
		if (parse_u64(id, &n) < 0 || n == 0 || n > UINT32_MAX) {
			fprintf(stderr, "pstore ca: a %s id is a positive integer (got '%s')\n",
				role, id);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(role, "client") == 0 || strcmp(role, "admin") == 0 ||
	    strcmp(role, "etcd") == 0) {
		if (!id_is_name(id)) {
			fprintf(stderr,
				"pstore ca: a %s id is 1..64 of [A-Za-z0-9._-] (got '%s')\n",
				role, id);
			return -EINVAL;
		}
		return 0;
	}
	fprintf(stderr, "pstore ca: unknown role '%s' (fat, vendor, client, admin, etcd)\n",
		role);
	return -EINVAL;
}

static int ca_issue(const char *dir, const char *role, const char *id, const char *out,
		    const char *san, enum ca_algo algo, unsigned days)
{
	struct ca ca;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char cn[128], prefix[PATH_MAX], keyp[PATH_MAX + 8], crtp[PATH_MAX + 8];
	char serial[CA_SERIAL_MAX], copy[PATH_MAX + CA_SERIAL_MAX + 8];
	int rc;

	if (check_role_id(role, id) < 0)
		return CLI_USAGE;
	snprintf(cn, sizeof(cn), "%s:%s", role, id);
	if (out)
		snprintf(prefix, sizeof(prefix), "%s", out);
	else
		snprintf(prefix, sizeof(prefix), "./%s-%s", role, id);
	snprintf(keyp, sizeof(keyp), "%s.key", prefix);
	snprintf(crtp, sizeof(crtp), "%s.crt", prefix);
	if (access(keyp, F_OK) == 0 || access(crtp, F_OK) == 0) {
		fprintf(stderr, "pstore ca: %s or %s exists; refusing to overwrite\n", keyp,
			crtp);
		return CLI_FAIL;
	}
	if (ca_open(&ca, dir) < 0)
		return CLI_FAIL;
	rc = -EIO;
	key = ca_key_new(algo);
	if (key)
		x = ca_make_leaf(ca.crt, ca.key, key, cn, san, days);
	if (!x || ca_serial_hex(x, serial, sizeof(serial)) < 0)
		goto out;
	snprintf(copy, sizeof(copy), "%s/%s.crt", ca.p.issued, serial);
	if (mkdir_p(ca.p.issued, 0700) < 0)
		goto out;
	/* The CA's record first: a certificate out there must be revocable. */
	rc = ca_cert_write(x, copy);
	if (rc == 0)
		rc = ca_key_write(key, keyp);
	if (rc == 0)
		rc = ca_cert_write(x, crtp);
	if (rc == 0)
		printf("issued %s serial %s: %s, %s\n", cn, serial, crtp, keyp);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	ca_close(&ca);
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int ca_revoke(const char *dir, const char *what, unsigned crl_days)
{
	struct ca ca;
	struct ca_revoked *rev = NULL;
	size_t n = 0;
	char serial[CA_SERIAL_MAX], copy[PATH_MAX + CA_SERIAL_MAX + 8], line[128];
	FILE *f;
	int rc;

	if (ca_open(&ca, dir) < 0)
		return CLI_FAIL;
	rc = -EINVAL;
	if (access(what, R_OK) == 0) {
		X509 *x = ca_cert_read(what);

		if (!x || X509_check_issued(ca.crt, x) != X509_V_OK ||
		    ca_serial_hex(x, serial, sizeof(serial)) < 0) {
			fprintf(stderr, "pstore ca: %s is not a certificate of this CA\n",
				what);
			X509_free(x);
			goto out;
		}
		X509_free(x);
	} else if (normalize_serial(what, serial, sizeof(serial)) < 0) {
		fprintf(stderr,
			"pstore ca: '%s' is neither a certificate file nor a hex serial\n",
			what);
		goto out;
	}
	snprintf(copy, sizeof(copy), "%s/%s.crt", ca.p.issued, serial);
	if (access(copy, F_OK) != 0)
		fprintf(stderr,
			"pstore ca: warning: serial %s was not issued by this CA "
			"directory; revoking it anyway\n",
			serial);
	rc = revoked_load(&ca.p, &rev, &n);
	if (rc < 0)
		goto out;
	if (revoked_has(rev, n, serial)) {
		printf("serial %s was already revoked\n", serial);
	} else {
		f = fopen(ca.p.revoked, "a");
		snprintf(line, sizeof(line), "%s %lld\n", serial, (long long)time(NULL));
		if (!f || fputs(line, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
			fprintf(stderr, "pstore ca: cannot append to %s\n", ca.p.revoked);
			if (f)
				fclose(f);
			rc = -EIO;
			goto out;
		}
		fclose(f);
	}
	rc = ca_make_crl(&ca, crl_days);
	if (rc == 0)
		printf(
		    "revoked serial %s; CRL %s updated (copy it to every daemon's [tls] crl)\n",
		    serial, ca.p.crl);
out:
	free(rev);
	ca_close(&ca);
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int ca_crl(const char *dir, unsigned crl_days)
{
	struct ca ca;
	int rc;

	if (ca_open(&ca, dir) < 0)
		return CLI_FAIL;
	rc = ca_make_crl(&ca, crl_days);
	if (rc == 0)
		printf("CRL %s signed, valid for %u days\n", ca.p.crl, crl_days);
	ca_close(&ca);
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int ca_list(const char *dir, bool json)
{
	struct ca_paths p;
	struct ca_revoked *rev = NULL;
	size_t n = 0;
	DIR *d;
	struct dirent *e;
	json_object *arr = json_object_new_array();

	if (ca_paths_init(&p, dir) < 0 || revoked_load(&p, &rev, &n) < 0) {
		json_object_put(arr);
		return CLI_FAIL;
	}
	d = opendir(p.issued);
	if (!d) {
		fprintf(stderr, "pstore ca: cannot read %s: %s\n", p.issued, strerror(errno));
		free(rev);
		json_object_put(arr);
		return CLI_FAIL;
	}
	if (!json)
		printf("%-34s %-8s %-20s %-20s %s\n", "SERIAL", "ROLE", "ID", "EXPIRES",
		       "REVOKED");
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX + 300], serial[CA_SERIAL_MAX], cn[160], when[32];
		const char *colon, *id;
		int64_t exp = 0;
		struct tm tm;
		time_t t;
		X509 *x;
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 4, ".crt") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", p.issued, e->d_name);
		x = ca_cert_read(path);
		if (!x)
			continue;
		if (ca_serial_hex(x, serial, sizeof(serial)) < 0 ||
		    ca_cert_cn(x, cn, sizeof(cn)) < 0 || ca_cert_not_after(x, &exp) < 0) {
			X509_free(x);
			continue;
		}
		X509_free(x);
		colon = strchr(cn, ':');
		id = colon ? colon + 1 : "";
		if (colon)
			cn[colon - cn] = '\0';
		t = (time_t)exp;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (json) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "serial", json_object_new_string(serial));
			json_object_object_add(o, "role", json_object_new_string(cn));
			json_object_object_add(o, "id", json_object_new_string(id));
			json_object_object_add(o, "expires", json_object_new_string(when));
			json_object_object_add(o, "expires_epoch", json_object_new_int64(exp));
			json_object_object_add(
			    o, "revoked", json_object_new_boolean(revoked_has(rev, n, serial)));
			json_object_array_add(arr, o);
		} else {
			printf("%-34s %-8s %-20s %-20s %s\n", serial, cn, id, when,
			       revoked_has(rev, n, serial) ? "yes" : "no");
		}
	}
	closedir(d);
	if (json) {
		json_object *root = json_object_new_object();

		json_object_object_add(root, "certificates", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		json_object_put(arr);
	}
	free(rev);
	return CLI_OK;
}

int cmd_ca(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'D'},	{"name", required_argument, NULL, 'N'},
	    {"algo", required_argument, NULL, 'a'},	{"days", required_argument, NULL, 'y'},
	    {"role", required_argument, NULL, 'r'},	{"id", required_argument, NULL, 'i'},
	    {"out", required_argument, NULL, 'o'},	{"san", required_argument, NULL, 's'},
	    {"crl-days", required_argument, NULL, 'l'}, {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *name = "deployment", *role = NULL, *id = NULL, *out = NULL;
	const char *san = NULL, *sub;
	enum ca_algo algo = CA_ALGO_P256;
	unsigned days = 0, crl_days = 365;
	bool json = false;
	int opt;

	(void)c;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		ca_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	sub = argv[1];
	/* Parse after the subcommand, options and operands in any order
	 * (optind 0: a full re-initialisation of glibc's getopt). */
	argc--;
	argv++;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'D':
			dir = optarg;
			break;
		case 'N':
			name = optarg;
			break;
		case 'a':
			if (parse_algo(optarg, &algo) < 0)
				return CLI_USAGE;
			break;
		case 'y':
			if (parse_days(optarg, &days) < 0)
				return CLI_USAGE;
			break;
		case 'l':
			if (parse_days(optarg, &crl_days) < 0)
				return CLI_USAGE;
			break;
		case 'r':
			role = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 's':
			san = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			ca_usage(stdout);
			return CLI_OK;
		default:
			ca_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (strcmp(sub, "init") == 0 && optind == argc) {
		if (strlen(name) > 100) {
			fprintf(stderr, "pstore ca: --name is at most 100 characters\n");
			return CLI_USAGE;
		}
		return ca_init(dir, name, algo, days ? days : 3650, crl_days);
	}
	if (strcmp(sub, "issue") == 0 && optind == argc) {
		if (!role || !id) {
			fprintf(stderr, "pstore ca issue: --role and --id are required\n");
			return CLI_USAGE;
		}
		return ca_issue(dir, role, id, out, san, algo, days ? days : 825);
	}
	if (strcmp(sub, "revoke") == 0 && optind + 1 == argc)
		return ca_revoke(dir, argv[optind], crl_days);
	if (strcmp(sub, "list") == 0 && optind == argc)
		return ca_list(dir, json);
	if (strcmp(sub, "crl") == 0 && optind == argc)
		return ca_crl(dir, crl_days);
	ca_usage(stderr);
	return CLI_USAGE;
}
