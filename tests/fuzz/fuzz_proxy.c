/* SPDX-License-Identifier: MIT */
/*
 * fuzz-proxy: the identity writers of gateway/datapath/identity.h, round trip.
 *
 * A struct tsgate_peer_info is built from the input (addresses of every
 * family, TLS and GSSAPI facts, strings up to 80 KiB so the 64 KiB TLV
 * limit is reachable). tsgate_identity_proxy_v2() encodes it; the strict
 * parser below, written from HAProxy's proxy-protocol.txt and sharing no
 * code with the writer, decodes it and every field must come back
 * exactly, in the documented TLV order, or the writer must have refused
 * with EMSGSIZE exactly when something cannot fit. tsgate_identity_knc()
 * gets the same treatment with knc's KEY:VALUE lines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <tsocket.h>

#include "fuzz_common.h"
#include "identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reading the input ---- */

struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

static uint8_t in_u8(struct fuzz_input *in)
{
	uint8_t v = 0;

	if (in->left > 0) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

static uint16_t in_u16(struct fuzz_input *in)
{
	uint16_t hi = in_u8(in);

	return (uint16_t)((hi << 8) | in_u8(in));
}

static void in_bytes(struct fuzz_input *in, uint8_t *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[i] = in_u8(in);
	}
}

/*
 * A string or NULL: a selector byte (NULL, short, long), then a length
 * and as many bytes as the input still has, repeated to the length. A
 * NUL byte ends the C string early, as it would in the gateway.
 */
static const char *in_string(TALLOC_CTX *mem_ctx, struct fuzz_input *in)
{
	uint8_t sel = in_u8(in);
	size_t len, avail, i;
	const uint8_t *src;
	char *s;

	if ((sel & 3) == 0) {
		return NULL;
	}
	if ((sel & 3) == 3) {
		/* long: up to 80 KiB, past the 64 KiB limit of a TLV */
		len = ((size_t)in_u16(in) + 1) * 5 / 4;
	} else {
		len = in_u8(in);
	}
	avail = len < in->left ? len : in->left;
	src = in->p;
	in->p += avail;
	in->left -= avail;
	s = talloc_array(mem_ctx, char, len + 1);
	FUZZ_ASSERT(s != NULL);
	for (i = 0; i < len; i++) {
		s[i] = avail > 0 ? (char)src[i % avail] : 'x';
	}
	s[len] = '\0';
	return s;
}

static const struct tsocket_address *in_address(TALLOC_CTX *mem_ctx,
						struct fuzz_input *in)
{
	struct tsocket_address *addr = NULL;
	uint8_t raw[16];
	char text[INET6_ADDRSTRLEN];
	const char *path;
	uint16_t port;
	int ret = -1;

	switch (in_u8(in) % 4) {
	case 0:
		return NULL;
	case 1:
		in_bytes(in, raw, 4);
		port = in_u16(in);
		FUZZ_ASSERT(inet_ntop(AF_INET, raw, text, sizeof(text)));
		ret = tsocket_address_inet_from_strings(mem_ctx, "ip", text,
							port, &addr);
		FUZZ_ASSERT(ret == 0);
		break;
	case 2:
		in_bytes(in, raw, 16);
		port = in_u16(in);
		FUZZ_ASSERT(inet_ntop(AF_INET6, raw, text, sizeof(text)));
		ret = tsocket_address_inet_from_strings(mem_ctx, "ip", text,
							port, &addr);
		FUZZ_ASSERT(ret == 0);
		break;
	case 3:
		path = in_string(mem_ctx, in);
		if (path == NULL) {
			path = "";
		}
		ret = tsocket_address_unix_from_path(mem_ctx, path, &addr);
		if (ret != 0) {
			/* only a path longer than sun_path may be refused */
			FUZZ_ASSERT(errno == ENAMETOOLONG);
			FUZZ_ASSERT(strlen(path) >= 108);
			return NULL;
		}
		break;
	}
	return addr;
}

/* ---- the independent PROXY v2 parser ---- */

struct pp2_tlv {
	uint8_t type;
	const uint8_t *value;
	size_t len;
};

struct pp2_parsed {
	uint8_t ver_cmd;
	uint8_t fam;
	const uint8_t *addr;
	size_t addr_len;
	struct pp2_tlv tlvs[8];
	size_t num_tlvs;
};

static size_t be16(const uint8_t *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

/* TLVs filling [p, p+n) exactly; false on any overrun. */
static bool pp2_parse_tlvs(
    const uint8_t *p, size_t n, struct pp2_tlv *tlvs, size_t max, size_t *num)
{
	*num = 0;
	while (n > 0) {
		size_t len;

		if (n < 3 || *num == max) {
			return false;
		}
		len = be16(p + 1);
		if (len > n - 3) {
			return false;
		}
		tlvs[*num].type = p[0];
		tlvs[*num].value = p + 3;
		tlvs[*num].len = len;
		(*num)++;
		p += 3 + len;
		n -= 3 + len;
	}
	return true;
}

static bool pp2_parse(const uint8_t *buf, size_t len, struct pp2_parsed *out)
{
	static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
	size_t body;

	memset(out, 0, sizeof(*out));
	if (len < 16 || memcmp(buf, sig, 12) != 0) {
		return false;
	}
	/*
	 * version 2 (high nibble), command PROXY (1) with TCP4/TCP6, or
	 * LOCAL (0) with UNSPEC: the only forms HAProxy and nginx use
	 */
	out->ver_cmd = buf[12];
	out->fam = buf[13];
	if (!(out->ver_cmd == 0x21 && (out->fam == 0x11 || out->fam == 0x21)) &&
	    !(out->ver_cmd == 0x20 && out->fam == 0x00)) {
		return false;
	}
	body = be16(buf + 14);
	if (16 + body != len) {
		return false;
	}
	switch (out->fam) {
	case 0x00:
		out->addr_len = 0;
		break;
	case 0x11:
		out->addr_len = 12;
		break;
	case 0x21:
		out->addr_len = 36;
		break;
	default:
		return false;
	}
	if (body < out->addr_len) {
		return false;
	}
	out->addr = buf + 16;
	return pp2_parse_tlvs(buf + 16 + out->addr_len, body - out->addr_len,
			      out->tlvs, 8, &out->num_tlvs);
}

/* ---- expectations ---- */

static bool nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static size_t tlv_size(const char *s)
{
	return nonempty(s) ? 3 + strlen(s) : 0;
}

/*
 * The address as it is handed on: an IPv4-mapped IPv6 address (an IPv4
 * client of a dual-stack listener) counts as the IPv4 address it is.
 * Returns its family, with raw holding 4 or 16 bytes.
 */
static int inet_effective(const struct tsocket_address *a, uint8_t raw[16])
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	char *text = tsocket_address_inet_addr_string(a, tmp);
	struct in6_addr a6;
	int af = AF_INET6;

	FUZZ_ASSERT(text != NULL);
	if (tsocket_address_is_inet(a, "ipv4")) {
		af = AF_INET;
		FUZZ_ASSERT(inet_pton(AF_INET, text, raw) == 1);
	} else {
		FUZZ_ASSERT(inet_pton(AF_INET6, text, &a6) == 1);
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			af = AF_INET;
			memcpy(raw, &a6.s6_addr[12], 4);
		} else {
			memcpy(raw, &a6, 16);
		}
	}
	talloc_free(tmp);
	return af;
}

static int addr_family(const struct tsocket_address *a)
{
	uint8_t raw[16];

	if (a == NULL) {
		return -1;
	}
	if (tsocket_address_is_unix(a)) {
		return AF_UNIX;
	}
	FUZZ_ASSERT(tsocket_address_is_inet(a, "ip"));
	return inet_effective(a, raw);
}

static const char *expected_version(TALLOC_CTX *mem_ctx, const char *v)
{
	/* the writer speaks OpenSSL's dialect: TLS1.3 -> TLSv1.3 */
	if (v != NULL && strncmp(v, "TLS1.", 5) == 0) {
		return talloc_asprintf(mem_ctx, "TLSv1.%s", v + 5);
	}
	return v;
}

static void expect_tlv(const struct pp2_parsed *pp,
		       size_t *i,
		       uint8_t type,
		       const char *value)
{
	if (!nonempty(value)) {
		return;
	}
	FUZZ_ASSERT(*i < pp->num_tlvs);
	FUZZ_ASSERT(pp->tlvs[*i].type == type);
	FUZZ_ASSERT(pp->tlvs[*i].len == strlen(value));
	FUZZ_ASSERT(memcmp(pp->tlvs[*i].value, value, strlen(value)) == 0);
	(*i)++;
}

static void check_inet(const uint8_t *field,
		       const uint8_t *port_field,
		       const struct tsocket_address *a,
		       int af)
{
	uint8_t raw[16];

	FUZZ_ASSERT(inet_effective(a, raw) == af);
	FUZZ_ASSERT(memcmp(field, raw, af == AF_INET ? 4 : 16) == 0);
	FUZZ_ASSERT(be16(port_field) == tsocket_address_inet_port(a));
}

/* An end of a TCP6 header: IPv6 as is, IPv4 as ::ffff:a.b.c.d. */
static void check_inet6(const uint8_t *field,
			const uint8_t *port_field,
			const struct tsocket_address *a)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};
	uint8_t raw[16];

	if (inet_effective(a, raw) == AF_INET) {
		FUZZ_ASSERT(memcmp(field, mapped, 12) == 0);
		FUZZ_ASSERT(memcmp(field + 12, raw, 4) == 0);
	} else {
		FUZZ_ASSERT(memcmp(field, raw, 16) == 0);
	}
	FUZZ_ASSERT(be16(port_field) == tsocket_address_inet_port(a));
}

static void check_proxy_v2(const struct tsgate_peer_info *info)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	const char *version = expected_version(tmp, info->tls_version);
	int fs = addr_family(info->remote), fd = addr_family(info->local);
	size_t addr_len = 0, body, ssl = 0, i = 0, j = 0;
	bool too_big = false;
	struct pp2_parsed pp;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	/* mixed IPv4/IPv6 ends go as IPv6; unix or unknown ends as LOCAL */
	if (fs == fd && fs == AF_INET) {
		addr_len = 12;
	} else if ((fs == AF_INET || fs == AF_INET6) &&
		   (fd == AF_INET || fd == AF_INET6)) {
		addr_len = 36;
	}
	body = addr_len + tlv_size(info->alpn) + tlv_size(info->sni);
	if (info->tls) {
		ssl = 5 + tlv_size(version) + tlv_size(info->tls_cipher) +
		      (info->client_cert ? tlv_size(info->client_cn) : 0);
		body += 3 + ssl;
		too_big |=
		    ssl > 0xffff || tlv_size(version) > 0x10002 ||
		    tlv_size(info->tls_cipher) > 0x10002 ||
		    (info->client_cert && tlv_size(info->client_cn) > 0x10002);
	}
	if (info->gssapi) {
		body += tlv_size(info->principal) + tlv_size(info->local_name) +
			tlv_size(info->mech);
		too_big |= tlv_size(info->principal) > 0x10002 ||
			   tlv_size(info->local_name) > 0x10002 ||
			   tlv_size(info->mech) > 0x10002;
	}
	too_big |= tlv_size(info->alpn) > 0x10002 ||
		   tlv_size(info->sni) > 0x10002 || body > 0xffff;

	ret = tsgate_identity_proxy_v2(tmp, info, &buf, &len);
	if (too_big) {
		FUZZ_ASSERT(ret == EMSGSIZE);
		talloc_free(tmp);
		return;
	}
	FUZZ_ASSERT(ret == 0);
	FUZZ_ASSERT(len == 16 + body);
	FUZZ_ASSERT(pp2_parse(buf, len, &pp));

	switch (addr_len) {
	case 0:
		FUZZ_ASSERT(pp.ver_cmd == 0x20 && pp.fam == 0x00);
		break;
	case 12:
		FUZZ_ASSERT(pp.fam == 0x11);
		check_inet(pp.addr, pp.addr + 8, info->remote, AF_INET);
		check_inet(pp.addr + 4, pp.addr + 10, info->local, AF_INET);
		break;
	case 36:
		FUZZ_ASSERT(pp.fam == 0x21);
		check_inet6(pp.addr, pp.addr + 32, info->remote);
		check_inet6(pp.addr + 16, pp.addr + 34, info->local);
		break;
	}

	expect_tlv(&pp, &i, 0x01, info->alpn);
	expect_tlv(&pp, &i, 0x02, info->sni);
	if (info->tls) {
		const struct pp2_tlv *t;
		struct pp2_parsed sub;
		uint8_t client = 0x01;
		uint32_t verify;

		FUZZ_ASSERT(i < pp.num_tlvs);
		t = &pp.tlvs[i++];
		FUZZ_ASSERT(t->type == 0x20 && t->len == ssl && t->len >= 5);
		if (info->client_cert) {
			client |= 0x02 | 0x04;
		}
		FUZZ_ASSERT(t->value[0] == client);
		verify = ((uint32_t)t->value[1] << 24) |
			 ((uint32_t)t->value[2] << 16) |
			 ((uint32_t)t->value[3] << 8) | t->value[4];
		/* 0 only for a certificate that was presented and verified */
		FUZZ_ASSERT((verify == 0) ==
			    (info->client_cert && info->cert_verified));
		FUZZ_ASSERT(pp2_parse_tlvs(t->value + 5, t->len - 5, sub.tlvs,
					   8, &sub.num_tlvs));
		expect_tlv(&sub, &j, 0x21, version);
		if (info->client_cert) {
			expect_tlv(&sub, &j, 0x22, info->client_cn);
		}
		expect_tlv(&sub, &j, 0x23, info->tls_cipher);
		FUZZ_ASSERT(j == sub.num_tlvs);
	}
	if (info->gssapi) {
		expect_tlv(&pp, &i, 0xE0, info->principal);
		expect_tlv(&pp, &i, 0xE1, info->local_name);
		expect_tlv(&pp, &i, 0xE2, info->mech);
	}
	FUZZ_ASSERT(i == pp.num_tlvs);
	talloc_free(tmp);
}

/* ---- knc ---- */

static bool has_newline(const char *s)
{
	return s != NULL && strchr(s, '\n') != NULL;
}

/* The next "KEY:VALUE\n" line must be exactly this one. */
static void expect_line(const char **p,
			const char *end,
			const char *key,
			const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);

	FUZZ_ASSERT((size_t)(end - *p) >= kl + 1 + vl + 1);
	FUZZ_ASSERT(memcmp(*p, key, kl) == 0 && (*p)[kl] == ':');
	FUZZ_ASSERT(memcmp(*p + kl + 1, value, vl) == 0);
	FUZZ_ASSERT((*p)[kl + 1 + vl] == '\n');
	*p += kl + 1 + vl + 1;
}

static void check_knc(const struct tsgate_peer_info *info)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	const char *mech = info->mech != NULL ? info->mech : "krb5";
	bool inet =
	    info->remote != NULL && tsocket_address_is_inet(info->remote, "ip");
	bool krb5 = info->gssapi && strcmp(mech, "krb5") == 0;
	bool refuse = false;
	const char *p, *end, *addr = NULL, *key;
	uint8_t *buf = NULL;
	size_t len = 0, i;
	int ret;

	if (info->gssapi) {
		refuse |= has_newline(mech);
		refuse |= krb5 && has_newline(info->principal);
	}
	ret = tsgate_identity_knc(tmp, info, &buf, &len);
	if (refuse) {
		/* a newline in a value would let a peer inject lines */
		FUZZ_ASSERT(ret == EINVAL);
		talloc_free(tmp);
		return;
	}
	FUZZ_ASSERT(ret == 0);
	FUZZ_ASSERT(memchr(buf, '\0', len) == NULL);
	p = (const char *)buf;
	end = p + len;

	if (info->gssapi) {
		expect_line(&p, end, "MECH", mech);
		if (krb5 && info->principal != NULL) {
			expect_line(&p, end, "CREDS", info->principal);
		}
		if (info->export_name != NULL) {
			char *hex = talloc_array(tmp, char,
						 2 * info->export_name_len + 1);

			FUZZ_ASSERT(hex != NULL);
			for (i = 0; i < info->export_name_len; i++) {
				snprintf(hex + 2 * i, 3, "%02X",
					 info->export_name[i]);
			}
			hex[2 * info->export_name_len] = '\0';
			expect_line(&p, end, "EXPORT_NAME", hex);
		}
	}
	if (inet) {
		uint8_t raw[16];
		char text[INET6_ADDRSTRLEN];
		int af = inet_effective(info->remote, raw);

		FUZZ_ASSERT(inet_ntop(af, raw, text, sizeof(text)) != NULL);
		addr = talloc_strdup(tmp, text);
		FUZZ_ASSERT(addr != NULL);
		key = af == AF_INET ? "REMOTE_IP" : "REMOTE_IP6";
		expect_line(&p, end, key, addr);
		expect_line(&p, end, "REMOTE_ADDR", addr);
		expect_line(&p, end, "REMOTE_PORT",
			    talloc_asprintf(tmp, "%u",
					    (unsigned)tsocket_address_inet_port(
						info->remote)));
	}
	FUZZ_ASSERT(end - p >= 8 && memcmp(p, "VERSION:", 8) == 0);
	p = memchr(p, '\n', (size_t)(end - p));
	FUZZ_ASSERT(p != NULL);
	p++;
	FUZZ_ASSERT(end - p == 4 && memcmp(p, "END\n", 4) == 0);
	talloc_free(tmp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct fuzz_input in = {data, size};
	struct tsgate_peer_info info = {0};
	uint8_t flags;

	FUZZ_ASSERT(mem != NULL);
	flags = in_u8(&in);
	info.tls = flags & 0x01;
	info.client_cert = flags & 0x02;
	info.cert_verified = flags & 0x04;
	info.gssapi = flags & 0x08;
	info.remote = in_address(mem, &in);
	info.local = in_address(mem, &in);
	info.tls_version = in_string(mem, &in);
	info.tls_cipher = in_string(mem, &in);
	info.sni = in_string(mem, &in);
	info.alpn = in_string(mem, &in);
	info.client_cn = in_string(mem, &in);
	info.principal = in_string(mem, &in);
	info.local_name = in_string(mem, &in);
	info.mech = in_string(mem, &in);
	if (flags & 0x10) {
		const char *e = in_string(mem, &in);

		info.export_name = (const uint8_t *)(e != NULL ? e : "");
		info.export_name_len = e != NULL ? strlen(e) : 0;
	}

	check_proxy_v2(&info);
	check_knc(&info);
	talloc_free(mem);
	return 0;
}
