/* SPDX-License-Identifier: MIT */
/*
 * tt-cert: issue a client certificate with arbitrary, possibly hostile,
 * names for the tests (never committed: the tests make them at run time).
 *
 *   tt-cert CA_CRT CA_KEY OUT_CRT OUT_KEY [--rdn TYPE=VALUE]...
 *           [--san KIND:VALUE]...
 *
 * Each --rdn appends one RDN to the subject in DER order (so the last
 * --rdn is the first RDN of the RFC 4514 string); TYPE is CN, O, OU, C,
 * UID, DC or a dotted OID, and several TYPE=VALUE joined by '+' make a
 * multi-valued RDN. --san KIND is DNS, email, URI or IP. VALUEs take
 * C escapes (\xNN, \\, \+) so that NUL and control bytes reach the DER
 * as they are: GnuTLS's own setters stop DNS names at a NUL, so the
 * subjectAltName extension is DER-encoded here by hand.
 */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BYTES 8192

struct bytes {
	unsigned char data[MAX_BYTES];
	size_t len;
};

static void die(const char *what, int ret)
{
	fprintf(stderr, "tt-cert: %s: %s\n", what,
		ret != 0 ? gnutls_strerror(ret) : "bad argument");
	exit(2);
}

/*
 * Decode C escapes of s up to an unescaped stop character (or the end);
 * returns where it stopped.
 */
static const char *unescape(const char *s, char stop, struct bytes *out)
{
	out->len = 0;
	while (*s != '\0' && *s != stop) {
		unsigned char c = (unsigned char)*s++;

		if (c == '\\' && *s == 'x' && s[1] != '\0' && s[2] != '\0') {
			char hex[3] = {s[1], s[2], '\0'};

			c = (unsigned char)strtoul(hex, NULL, 16);
			s += 3;
		} else if (c == '\\' && *s != '\0') {
			c = (unsigned char)*s++;
		}
		if (out->len == sizeof(out->data)) {
			die("value too long", 0);
		}
		out->data[out->len++] = c;
	}
	return s;
}

static const char *oid_of(const char *type, size_t n)
{
	static const struct {
		const char *name;
		const char *oid;
	} names[] = {
	    {"CN", GNUTLS_OID_X520_COMMON_NAME},
	    {"O", GNUTLS_OID_X520_ORGANIZATION_NAME},
	    {"OU", GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME},
	    {"C", GNUTLS_OID_X520_COUNTRY_NAME},
	    {"UID", GNUTLS_OID_LDAP_UID},
	    {"DC", GNUTLS_OID_LDAP_DC},
	};
	static char dotted[128];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == n &&
		    strncmp(names[i].name, type, n) == 0) {
			return names[i].oid;
		}
	}
	if (n == 0 || n >= sizeof(dotted)) {
		die("attribute type", 0);
	}
	memcpy(dotted, type, n);
	dotted[n] = '\0';
	return dotted;
}

/* Append one RDN: TYPE=VALUE, the value encoded as GnuTLS picks. */
static void add_rdn(gnutls_x509_crt_t crt, const char *spec)
{
	const char *eq = strchr(spec, '=');
	struct bytes value;
	int ret;

	if (eq == NULL) {
		die("--rdn wants TYPE=VALUE", 0);
	}
	unescape(eq + 1, '\0', &value);
	ret = gnutls_x509_crt_set_dn_by_oid(crt, oid_of(spec, eq - spec), 0,
					    value.data, value.len);
	if (ret < 0) {
		die(spec, ret);
	}
}

static void der_len(struct bytes *b, size_t n)
{
	if (b->len + 3 > sizeof(b->data)) {
		die("subjectAltName too long", 0);
	}
	if (n < 0x80) {
		b->data[b->len++] = (unsigned char)n;
	} else if (n < 0x100) {
		b->data[b->len++] = 0x81;
		b->data[b->len++] = (unsigned char)n;
	} else {
		b->data[b->len++] = 0x82;
		b->data[b->len++] = (unsigned char)(n >> 8);
		b->data[b->len++] = (unsigned char)(n & 0xff);
	}
}

static void der_put(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > sizeof(b->data)) {
		die("subjectAltName too long", 0);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* One GeneralName ([1] rfc822, [2] dNSName, [6] URI, [7] iPAddress). */
static void add_san(struct bytes *names, const char *spec)
{
	static const struct {
		const char *kind;
		unsigned char tag;
	} kinds[] = {
	    {"DNS:", 0x82},
	    {"email:", 0x81},
	    {"URI:", 0x86},
	    {"IP:", 0x87},
	};
	struct bytes value;
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strncmp(spec, kinds[i].kind, strlen(kinds[i].kind)) == 0) {
			break;
		}
	}
	if (i == sizeof(kinds) / sizeof(kinds[0])) {
		die("--san wants DNS:, email:, URI: or IP:", 0);
	}
	spec += strlen(kinds[i].kind);
	if (kinds[i].tag == 0x87 && inet_pton(AF_INET, spec, value.data) == 1) {
		value.len = 4;
	} else if (kinds[i].tag == 0x87 &&
		   inet_pton(AF_INET6, spec, value.data) == 1) {
		value.len = 16;
	} else {
		/* raw bytes: hostile names, or an IP of the wrong length */
		unescape(spec, '\0', &value);
	}
	der_put(names, &kinds[i].tag, 1);
	der_len(names, value.len);
	der_put(names, value.data, value.len);
}

static gnutls_datum_t read_file(const char *path)
{
	gnutls_datum_t d = {NULL, 0};
	int ret = gnutls_load_file(path, &d);

	if (ret < 0) {
		die(path, ret);
	}
	return d;
}

static void write_file(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fwrite(d->data, 1, d->size, f) != d->size ||
	    fclose(f) != 0) {
		fprintf(stderr, "tt-cert: cannot write %s\n", path);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	gnutls_x509_crt_t ca, crt;
	gnutls_x509_privkey_t ca_key, key;
	gnutls_datum_t d, out;
	struct bytes names = {.len = 0};
	struct bytes ext = {.len = 0};
	unsigned char serial[8];
	time_t now = time(NULL);
	int i, ret;

	if (argc < 5) {
		fprintf(stderr,
			"usage: tt-cert CA_CRT CA_KEY OUT_CRT OUT_KEY "
			"[--rdn TYPE=VALUE]... [--san KIND:VALUE]...\n");
		return 2;
	}
	if ((ret = gnutls_global_init()) < 0 ||
	    (ret = gnutls_x509_crt_init(&ca)) < 0 ||
	    (ret = gnutls_x509_crt_init(&crt)) < 0 ||
	    (ret = gnutls_x509_privkey_init(&ca_key)) < 0 ||
	    (ret = gnutls_x509_privkey_init(&key)) < 0) {
		die("init", ret);
	}
	d = read_file(argv[1]);
	if ((ret = gnutls_x509_crt_import(ca, &d, GNUTLS_X509_FMT_PEM)) < 0) {
		die(argv[1], ret);
	}
	gnutls_free(d.data);
	d = read_file(argv[2]);
	if ((ret = gnutls_x509_privkey_import2(ca_key, &d, GNUTLS_X509_FMT_PEM,
					       NULL, 0)) < 0) {
		die(argv[2], ret);
	}
	gnutls_free(d.data);
	if ((ret = gnutls_x509_privkey_generate(
		 key, GNUTLS_PK_ECDSA,
		 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
	    (ret = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (ret = gnutls_x509_crt_set_key(crt, key)) < 0) {
		die("key", ret);
	}
	for (i = 5; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--rdn") == 0) {
			add_rdn(crt, argv[i + 1]);
		} else if (strcmp(argv[i], "--san") == 0) {
			add_san(&names, argv[i + 1]);
		} else {
			die(argv[i], 0);
		}
	}
	if (i != argc) {
		die(argv[i], 0);
	}
	if (names.len > 0) {
		const unsigned char seq = 0x30;

		der_put(&ext, &seq, 1);
		der_len(&ext, names.len);
		der_put(&ext, names.data, names.len);
		ret = gnutls_x509_crt_set_extension_by_oid(
		    crt, "2.5.29.17", ext.data, ext.len, 0);
		if (ret < 0) {
			die("subjectAltName", ret);
		}
	}
	if ((ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0) {
		die("serial", ret);
	}
	serial[0] &= 0x7f; /* a positive INTEGER */
	if ((ret = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) <
		0 ||
	    (ret = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (ret = gnutls_x509_crt_set_expiration_time(crt, now + 2 * 86400)) <
		0 ||
	    (ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_usage(
		 crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_purpose_oid(
		 crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (ret = gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256,
					 0)) < 0) {
		die("sign", ret);
	}
	if ((ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out)) <
	    0) {
		die("export", ret);
	}
	write_file(argv[3], &out);
	gnutls_free(out.data);
	if ((ret = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM,
						     NULL, GNUTLS_PKCS_PLAIN,
						     &out)) < 0) {
		die("export key", ret);
	}
	write_file(argv[4], &out);
	gnutls_free(out.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_privkey_deinit(ca_key);
	gnutls_global_deinit();
	return 0;
}
