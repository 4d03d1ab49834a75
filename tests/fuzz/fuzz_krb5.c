/* SPDX-License-Identifier: MIT */
/*
 * Kerberos set-up shared by the GSSAPI fuzzers (see fuzz_krb5.h).
 */
#include "fuzz_krb5.h"

#include <krb5/krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_common.h"

/* MIT exports these (its KDC uses them) without declaring them. */
krb5_error_code encode_krb5_ticket(const krb5_ticket *rep, krb5_data **code);
krb5_error_code krb5_encrypt_tkt_part(krb5_context context,
				      const krb5_keyblock *srv_key,
				      krb5_ticket *dec_ticket);

static void check_krb5(krb5_context ctx, krb5_error_code code, const char *w)
{
	if (code != 0) {
		fprintf(stderr, "fuzz krb5 set-up: %s: %s\n", w,
			krb5_get_error_message(ctx, code));
		abort();
	}
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	FUZZ_ASSERT(f != NULL);
	FUZZ_ASSERT(fputs(text, f) >= 0);
	FUZZ_ASSERT(fclose(f) == 0);
}

static void make_keytab(krb5_context ctx,
			krb5_principal server,
			const krb5_data *salt,
			const char *path)
{
	static const krb5_enctype enctypes[] = {
	    ENCTYPE_AES256_CTS_HMAC_SHA1_96,
	    ENCTYPE_AES128_CTS_HMAC_SHA1_96,
	    ENCTYPE_AES256_CTS_HMAC_SHA384_192,
	    ENCTYPE_AES128_CTS_HMAC_SHA256_128,
	};
	static char password[] = FUZZ_KRB5_PASSWORD;
	krb5_data pw = {.data = password, .length = strlen(password)};
	size_t num = sizeof(enctypes) / sizeof(enctypes[0]);
	krb5_keytab kt;
	char name[4200];
	size_t i;

	snprintf(name, sizeof(name), "FILE:%s", path);
	check_krb5(ctx, krb5_kt_resolve(ctx, name, &kt), "keytab");
	/* kvno 1-4: whatever kvno a seed-making KDC gave the key */
	for (i = 0; i < 4 * num; i++) {
		krb5_keytab_entry entry;

		memset(&entry, 0, sizeof(entry));
		entry.principal = server;
		entry.vno = 1 + i / num;
		check_krb5(ctx,
			   krb5_c_string_to_key(ctx, enctypes[i % num], &pw,
						salt, &entry.key),
			   "string_to_key");
		check_krb5(ctx, krb5_kt_add_entry(ctx, kt, &entry),
			   "kt_add_entry");
		krb5_free_keyblock_contents(ctx, &entry.key);
	}
	krb5_kt_close(ctx, kt);
}

/* alice's ticket to the service, encrypted in its kvno 1 AES256 key */
static void make_ticket(krb5_context ctx,
			krb5_principal client,
			krb5_principal server,
			const krb5_data *salt)
{
	static char password[] = FUZZ_KRB5_PASSWORD;
	krb5_data pw = {.data = password, .length = strlen(password)};
	krb5_keyblock service_key, session_key;
	krb5_enc_tkt_part enc;
	krb5_ticket ticket;
	krb5_creds creds;
	krb5_data *der = NULL;
	krb5_ccache cc;
	krb5_timestamp now = (krb5_timestamp)time(NULL);

	check_krb5(ctx,
		   krb5_c_string_to_key(ctx, ENCTYPE_AES256_CTS_HMAC_SHA1_96,
					&pw, salt, &service_key),
		   "service key");
	check_krb5(ctx,
		   krb5_c_make_random_key(ctx, ENCTYPE_AES256_CTS_HMAC_SHA1_96,
					  &session_key),
		   "session key");
	memset(&enc, 0, sizeof(enc));
	enc.flags = TKT_FLG_INITIAL;
	enc.session = &session_key;
	enc.client = client;
	enc.times.authtime = now;
	enc.times.starttime = now;
	enc.times.endtime = now + 30 * 24 * 3600; /* outlives any session */
	memset(&ticket, 0, sizeof(ticket));
	ticket.server = server;
	ticket.enc_part.kvno = 1;
	ticket.enc_part2 = &enc;
	check_krb5(ctx, krb5_encrypt_tkt_part(ctx, &service_key, &ticket),
		   "encrypt ticket");
	check_krb5(ctx, encode_krb5_ticket(&ticket, &der), "encode ticket");

	memset(&creds, 0, sizeof(creds));
	creds.client = client;
	creds.server = server;
	creds.keyblock = session_key;
	creds.times = enc.times;
	creds.ticket_flags = TKT_FLG_INITIAL;
	creds.ticket = *der;
	check_krb5(ctx, krb5_cc_resolve(ctx, FUZZ_KRB5_CCACHE, &cc), "ccache");
	check_krb5(ctx, krb5_cc_initialize(ctx, cc, client), "cc init");
	check_krb5(ctx, krb5_cc_store_cred(ctx, cc, &creds), "cc store");
	/* a MEMORY ccache lives on in the process after close */
	krb5_cc_close(ctx, cc);

	krb5_free_data(ctx, der);
	krb5_free_data_contents(ctx, &ticket.enc_part.ciphertext);
	krb5_free_keyblock_contents(ctx, &service_key);
	krb5_free_keyblock_contents(ctx, &session_key);
}

const char *fuzz_krb5_setup(const char *dir)
{
	static char keytab[4096];
	char conf[4096];
	krb5_context ctx;
	krb5_principal client, server;
	krb5_data salt;

	snprintf(conf, sizeof(conf), "%s/krb5.conf", dir);
	snprintf(keytab, sizeof(keytab), "%s/fuzz.keytab", dir);
	/* Never a KDC, DNS or the host's config. */
	write_text(conf, "[libdefaults]\n"
			 "\tdefault_realm = " FUZZ_KRB5_REALM "\n"
			 "\tdns_lookup_kdc = false\n"
			 "\tdns_lookup_realm = false\n"
			 "\trdns = false\n"
			 "\tdns_canonicalize_hostname = false\n"
			 "\tqualify_shortname = \"\"\n"
			 "[realms]\n"
			 "\t" FUZZ_KRB5_REALM " = {\n"
			 "\t\tkdc = 127.0.0.1:1\n"
			 "\t}\n");
	setenv("KRB5_CONFIG", conf, 1);
	setenv("KRB5_KDC_PROFILE", conf, 1);
	setenv("KRB5RCACHETYPE", "none", 1);
	setenv("KRB5CCNAME", FUZZ_KRB5_CCACHE, 1);
	unsetenv("KRB5_TRACE");

	check_krb5(NULL, krb5_init_context(&ctx), "krb5_init_context");
	check_krb5(ctx, krb5_parse_name(ctx, FUZZ_KRB5_CLIENT, &client),
		   "client");
	check_krb5(ctx, krb5_parse_name(ctx, FUZZ_KRB5_SERVICE, &server),
		   "server");
	check_krb5(ctx, krb5_principal2salt(ctx, server, &salt), "salt");
	make_keytab(ctx, server, &salt, keytab);
	make_ticket(ctx, client, server, &salt);
	krb5_free_data_contents(ctx, &salt);
	krb5_free_principal(ctx, client);
	krb5_free_principal(ctx, server);
	krb5_free_context(ctx);
	return keytab;
}
