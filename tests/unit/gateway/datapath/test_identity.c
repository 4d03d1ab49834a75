/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/identity.c: the PROXY protocol v2 header
 * (HAProxy proxy-protocol.txt section 2.2) and knc's KEY:VALUE hand-off,
 * checked byte by byte against the specifications rather than against the
 * encoder's own constants.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "identity.h"

static struct tsocket_address *inet(const char *ip, uint16_t port)
{
	struct tsocket_address *a = NULL;

	ck_assert_int_eq(
	    tsocket_address_inet_from_strings(tt_mem, "ip", ip, port, &a), 0);
	return a;
}

static struct tsocket_address *unix_addr(const char *path)
{
	struct tsocket_address *a = NULL;

	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, path, &a), 0);
	return a;
}

/* A cursor over the produced bytes, failing the test on overrun. */
struct cur {
	const uint8_t *p;
	size_t left;
};

static uint8_t u8(struct cur *c)
{
	ck_assert_uint_ge(c->left, 1);
	c->left--;
	return *c->p++;
}

static uint16_t u16(struct cur *c)
{
	uint16_t hi = u8(c);

	return (uint16_t)(hi << 8 | u8(c));
}

static void expect_bytes(struct cur *c, const void *bytes, size_t n)
{
	ck_assert_uint_ge(c->left, n);
	ck_assert_mem_eq(c->p, bytes, n);
	c->p += n;
	c->left -= n;
}

/* Expect a TLV of this type with exactly this string value. */
static void expect_tlv_str(struct cur *c, uint8_t type, const char *value)
{
	ck_assert_uint_eq(u8(c), type);
	ck_assert_uint_eq(u16(c), strlen(value));
	expect_bytes(c, value, strlen(value));
}

/* The 16-byte fixed header; returns the address+TLV length. */
static size_t expect_header_cmd(struct cur *c, uint8_t ver_cmd, uint8_t fam)
{
	/* signature, as the spec spells it out in hex */
	static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
	size_t len;

	expect_bytes(c, sig, sizeof(sig));
	ck_assert_uint_eq(u8(c), ver_cmd);
	ck_assert_uint_eq(u8(c), fam);
	len = u16(c);
	ck_assert_uint_eq(len, c->left); /* nothing after the header */
	return len;
}

static size_t expect_header(struct cur *c, uint8_t fam)
{
	return expect_header_cmd(c, 0x21, fam); /* \x2 version, \x1 PROXY */
}

START_TEST(test_pp2_tcp4_plain)
{
	struct tsgate_peer_info info = {
	    .remote = inet("192.0.2.10", 40000),
	    .local = inet("198.51.100.1", 8443),
	};
	static const uint8_t addrs[12] = {192, 0, 2,    10,   198,  51,
					  100, 1, 0x9c, 0x40, 0x20, 0xfb};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	ck_assert_uint_eq(len, 16 + 12);
	ck_assert_ptr_eq(talloc_parent(buf), tt_mem);
	c = (struct cur){buf, len};
	expect_header(&c, 0x11); /* TCP over IPv4 */
	expect_bytes(&c, addrs, sizeof(addrs));
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

START_TEST(test_pp2_tcp6_tls)
{
	const char *sans[] = {"DNS:client.example", NULL};
	struct tsgate_peer_info info = {
	    .remote = inet("2001:db8::1", 1),
	    .local = inet("2001:db8::2", 443),
	    .tls = true,
	    .tls_version = "TLS1.3",
	    .tls_cipher = "TLS_AES_256_GCM_SHA384",
	    .sni = "ldap.example.com",
	    .alpn = "h2",
	    .client_cert = true,
	    .cert_verified = true,
	    .client_subject = "CN=alice,O=Example",
	    .client_cn = "alice",
	    .client_sans = sans,
	    .num_client_sans = 1,
	};
	uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8};
	uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8};
	uint8_t *buf = NULL;
	size_t len = 0, ssl_len;
	struct cur c, ssl;

	src[15] = 1;
	dst[15] = 2;
	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header(&c, 0x21); /* TCP over IPv6 */
	expect_bytes(&c, src, 16);
	expect_bytes(&c, dst, 16);
	ck_assert_uint_eq(u16(&c), 1);
	ck_assert_uint_eq(u16(&c), 443);
	expect_tlv_str(&c, 0x01, "h2");               /* PP2_TYPE_ALPN */
	expect_tlv_str(&c, 0x02, "ldap.example.com"); /* AUTHORITY */

	ck_assert_uint_eq(u8(&c), 0x20); /* PP2_TYPE_SSL */
	ssl_len = u16(&c);
	ck_assert_uint_eq(ssl_len, c.left);
	ssl = (struct cur){c.p, ssl_len};
	/* client: SSL | CERT_CONN | CERT_SESS */
	ck_assert_uint_eq(u8(&ssl), 0x01 | 0x02 | 0x04);
	/* verify: 32 bits, 0 = verified */
	ck_assert_uint_eq(u16(&ssl), 0);
	ck_assert_uint_eq(u16(&ssl), 0);
	/* OpenSSL's spelling, as HAProxy sends it */
	expect_tlv_str(&ssl, 0x21, "TLSv1.3");                /* SSL_VERSION */
	expect_tlv_str(&ssl, 0x22, "alice");                  /* SSL_CN */
	expect_tlv_str(&ssl, 0x23, "TLS_AES_256_GCM_SHA384"); /* CIPHER */
	ck_assert_uint_eq(ssl.left, 0);
}
END_TEST

START_TEST(test_pp2_tls_no_cert)
{
	struct tsgate_peer_info info = {
	    .remote = inet("127.0.0.1", 5000),
	    .local = inet("127.0.0.1", 6000),
	    .tls = true,
	    .tls_version = "TLS1.2",
	    .tls_cipher = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header(&c, 0x11);
	c.p += 12;
	c.left -= 12;
	/* no ALPN, no AUTHORITY: straight to the SSL TLV */
	ck_assert_uint_eq(u8(&c), 0x20);
	ck_assert_uint_eq(u16(&c), c.left);
	ck_assert_uint_eq(u8(&c), 0x01); /* SSL only */
	/* no certificate: verify is non-zero */
	ck_assert_uint_ne(((uint32_t)u16(&c) << 16) | u16(&c), 0);
	expect_tlv_str(&c, 0x21, "TLSv1.2");
	/* no CN sub-TLV without a certificate */
	expect_tlv_str(&c, 0x23, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

/*
 * Issue 13, defect 2: a certificate whose names cannot be trusted (a NUL
 * in a SAN) reaches the backend as "not verified" and without a CN, even
 * if a CN string is around, and gives no identity for the logs.
 */
START_TEST(test_pp2_name_error)
{
	struct tsgate_peer_info info = {
	    .remote = inet("127.0.0.1", 5000),
	    .local = inet("127.0.0.1", 6000),
	    .tls = true,
	    .tls_version = "TLS1.3",
	    .tls_cipher = "TLS_AES_128_GCM_SHA256",
	    .client_cert = true,
	    .cert_verified = true,
	    .client_subject = "CN=alice",
	    .client_cn = "alice",
	    .client_name_error = "DNS SAN holds a NUL byte",
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_ptr_null(tsgate_identity_summary(&info));
	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header(&c, 0x11);
	c.p += 12;
	c.left -= 12;
	ck_assert_uint_eq(u8(&c), 0x20); /* PP2_TYPE_SSL */
	ck_assert_uint_eq(u16(&c), c.left);
	/* a certificate was presented ... */
	ck_assert_uint_eq(u8(&c), 0x01 | 0x02 | 0x04);
	/* ... but it does not count as verified */
	ck_assert_uint_ne(((uint32_t)u16(&c) << 16) | u16(&c), 0);
	expect_tlv_str(&c, 0x21, "TLSv1.3");
	/* and no SSL_CN sub-TLV */
	expect_tlv_str(&c, 0x23, "TLS_AES_128_GCM_SHA256");
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

/*
 * A unix-socket client has no address a consumer can use: HAProxy (up to
 * 3.x) rejects a PROXY command with any family but TCP4/TCP6 (it then
 * parses the TLVs from offset 0, the signature), and nginx ignores such a
 * header. HAProxy itself sends LOCAL with UNSPEC and no address block
 * there, and still appends its TLVs; so do we.
 */
START_TEST(test_pp2_unix_gssapi)
{
	struct tsgate_peer_info info = {
	    .remote = unix_addr(""),
	    .local = unix_addr("/run/tsgate/in.sock"),
	    .gssapi = true,
	    .principal = "alice@EXAMPLE.COM",
	    .local_name = "alice",
	    .mech = "krb5",
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	/* \x2 version, \x0 LOCAL; UNSPEC: no address block, TLVs at 16 */
	ck_assert_uint_eq(expect_header_cmd(&c, 0x20, 0x00),
			  3 + 17 + 3 + 5 + 3 + 4);
	expect_tlv_str(&c, 0xE0, "alice@EXAMPLE.COM");
	expect_tlv_str(&c, 0xE1, "alice");
	expect_tlv_str(&c, 0xE2, "krb5");
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

START_TEST(test_pp2_unix_tls_keeps_tlvs)
{
	struct tsgate_peer_info info = {
	    .remote = unix_addr(""),
	    .local = unix_addr("/run/tsgate/tls.sock"),
	    .tls = true,
	    .tls_version = "TLS1.3",
	    .sni = "svc.example",
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header_cmd(&c, 0x20, 0x00);
	expect_tlv_str(&c, 0x02, "svc.example");
	ck_assert_uint_eq(u8(&c), 0x20); /* PP2_TYPE_SSL */
	ck_assert_uint_eq(u16(&c), 5 + 3 + 7);
	ck_assert_uint_eq(u8(&c), 0x01);         /* client: SSL */
	expect_bytes(&c, "\x00\x00\x00\x01", 4); /* no certificate */
	expect_tlv_str(&c, 0x21, "TLSv1.3");
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

START_TEST(test_v4_mapped_is_ipv4)
{
	/* a dual-stack [::] listener sees IPv4 clients as ::ffff:a.b.c.d */
	struct tsgate_peer_info info = {
	    .remote = inet("::ffff:192.0.2.10", 40000),
	    .local = inet("::ffff:198.51.100.1", 8443),
	};
	static const uint8_t addrs[12] = {192, 0, 2,    10,   198,  51,
					  100, 1, 0x9c, 0x40, 0x20, 0xfb};
	uint8_t *buf = NULL;
	size_t len = 0;
	char *text;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header(&c, 0x11);
	expect_bytes(&c, addrs, sizeof(addrs));
	ck_assert_int_eq(tsgate_identity_knc(tt_mem, &info, &buf, &len), 0);
	text = talloc_strndup(tt_mem, (const char *)buf, len);
	ck_assert(
	    strncmp(text,
		    "REMOTE_IP:192.0.2.10\nREMOTE_ADDR:192.0.2.10\n"
		    "REMOTE_PORT:40000\n",
		    strlen("REMOTE_IP:192.0.2.10\nREMOTE_ADDR:192.0.2.10\n"
			   "REMOTE_PORT:40000\n")) == 0);
}
END_TEST

START_TEST(test_pp2_unspec)
{
	/* an inet client of a unix address (or unknown addresses): LOCAL */
	struct tsgate_peer_info info = {
	    .remote = inet("127.0.0.1", 1),
	    .local = unix_addr("/tmp/x"),
	    .sni = "a",
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header_cmd(&c, 0x20, 0x00);
	expect_tlv_str(&c, 0x02, "a");
	ck_assert_uint_eq(c.left, 0);

	info.remote = NULL; /* not known at all */
	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	expect_header_cmd(&c, 0x20, 0x00);
	expect_tlv_str(&c, 0x02, "a");
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

START_TEST(test_pp2_mixed_inet_is_tcp6)
{
	/*
	 * IPv4 on one end, IPv6 on the other: TCP6 with the IPv4 end
	 * as ::ffff:a.b.c.d, as HAProxy sends it, rather than a PROXY
	 * command without addresses that HAProxy would refuse.
	 */
	struct tsgate_peer_info info = {
	    .remote = inet("192.0.2.10", 40000),
	    .local = inet("2001:db8::2", 443),
	};
	static const uint8_t src[16] = {0, 0, 0,    0,    0,   0, 0, 0,
					0, 0, 0xff, 0xff, 192, 0, 2, 10};
	static const uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
					0,    0,    0,    0,    0, 0, 0, 2};
	static const uint8_t ports[4] = {0x9c, 0x40, 0x01, 0xbb};
	uint8_t *buf = NULL;
	size_t len = 0;
	struct cur c;

	ck_assert_int_eq(tsgate_identity_proxy_v2(tt_mem, &info, &buf, &len),
			 0);
	c = (struct cur){buf, len};
	ck_assert_uint_eq(expect_header(&c, 0x21), 36);
	expect_bytes(&c, src, sizeof(src));
	expect_bytes(&c, dst, sizeof(dst));
	expect_bytes(&c, ports, sizeof(ports));
	ck_assert_uint_eq(c.left, 0);
}
END_TEST

/*
 * The hand-off as text, with the VERSION value (tsgate's version, which
 * changes) replaced by "tsgate-X" after checking its form.
 */
static char *knc_text(const uint8_t *buf, size_t len)
{
	char *text = talloc_strndup(tt_mem, (const char *)buf, len);
	char *v, *end;

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len); /* no NUL inside */
	v = strstr(text, "\nVERSION:tsgate-");
	ck_assert_ptr_nonnull(v);
	v += strlen("\nVERSION:tsgate-");
	end = strchr(v, '\n');
	ck_assert_ptr_nonnull(end);
	ck_assert_ptr_ne(end, v);
	*v = '\0';
	return talloc_asprintf(tt_mem, "%sX%s", text, end);
}

START_TEST(test_knc_gssapi_v4)
{
	static const uint8_t exported[] = {0x04, 0x01, 0x00, 0x0b, 0xab};
	struct tsgate_peer_info info = {
	    .remote = inet("10.1.2.3", 51515),
	    .local = inet("10.1.2.4", 9443),
	    .gssapi = true,
	    .principal = "alice@EXAMPLE.COM",
	    .mech = "krb5",
	    .export_name = exported,
	    .export_name_len = sizeof(exported),
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	char *text;

	ck_assert_int_eq(tsgate_identity_knc(tt_mem, &info, &buf, &len), 0);
	text = knc_text(buf, len);
	/* knc's order and spelling; hex in upper case */
	ck_assert_str_eq(text, "MECH:krb5\n"
			       "CREDS:alice@EXAMPLE.COM\n"
			       "EXPORT_NAME:0401000BAB\n"
			       "REMOTE_IP:10.1.2.3\n"
			       "REMOTE_ADDR:10.1.2.3\n"
			       "REMOTE_PORT:51515\n"
			       "VERSION:tsgate-X\n"
			       "END\n");
}
END_TEST

START_TEST(test_knc_v6_no_gssapi)
{
	struct tsgate_peer_info info = {
	    .remote = inet("2001:db8:0:0:0:0:0:7", 2),
	    .local = inet("::1", 3),
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	char *text;

	ck_assert_int_eq(tsgate_identity_knc(tt_mem, &info, &buf, &len), 0);
	text = knc_text(buf, len);
	ck_assert_str_eq(text, "REMOTE_IP6:2001:db8::7\n"
			       "REMOTE_ADDR:2001:db8::7\n"
			       "REMOTE_PORT:2\n"
			       "VERSION:tsgate-X\n"
			       "END\n");
}
END_TEST

START_TEST(test_knc_refuses_newline)
{
	struct tsgate_peer_info info = {
	    .remote = inet("127.0.0.1", 2),
	    .gssapi = true,
	    .principal = "evil\nEND\n@EXAMPLE.COM",
	    .mech = "krb5",
	};
	uint8_t *buf = NULL;
	size_t len = 0;

	ck_assert_int_eq(tsgate_identity_knc(tt_mem, &info, &buf, &len),
			 EINVAL);
	ck_assert_ptr_null(buf);
}
END_TEST

START_TEST(test_summary)
{
	struct tsgate_peer_info info = {0};

	ck_assert_ptr_null(tsgate_identity_summary(&info));
	info.tls = true;
	info.client_subject = "CN=x";
	ck_assert_ptr_null(tsgate_identity_summary(&info)); /* no cert */
	info.client_cert = true;
	ck_assert_ptr_null(tsgate_identity_summary(&info)); /* unverified */
	info.cert_verified = true;
	ck_assert_str_eq(tsgate_identity_summary(&info), "CN=x");
	info.gssapi = true;
	info.principal = "p@R";
	ck_assert_str_eq(tsgate_identity_summary(&info), "p@R");
}
END_TEST

static Suite *identity_suite(void)
{
	Suite *s = suite_create("identity");
	TCase *tc;

	tc = tt_tcase(s, "proxy_v2", 10);
	tcase_add_test(tc, test_pp2_tcp4_plain);
	tcase_add_test(tc, test_pp2_tcp6_tls);
	tcase_add_test(tc, test_pp2_tls_no_cert);
	tcase_add_test(tc, test_pp2_name_error);
	tcase_add_test(tc, test_pp2_unix_gssapi);
	tcase_add_test(tc, test_pp2_unix_tls_keeps_tlvs);
	tcase_add_test(tc, test_pp2_unspec);
	tcase_add_test(tc, test_pp2_mixed_inet_is_tcp6);
	tcase_add_test(tc, test_v4_mapped_is_ipv4);

	tc = tt_tcase(s, "knc", 10);
	tcase_add_test(tc, test_knc_gssapi_v4);
	tcase_add_test(tc, test_knc_v6_no_gssapi);
	tcase_add_test(tc, test_knc_refuses_newline);

	tc = tt_tcase(s, "summary", 10);
	tcase_add_test(tc, test_summary);

	return s;
}

int main(void)
{
	return tt_run_suite(identity_suite());
}
