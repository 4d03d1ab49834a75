/* SPDX-License-Identifier: MIT */
/*
 * The delaying KDC relay (tt_kdc_relay.h). Child process: accept loop;
 * one grandchild per connection copies client → KDC at once and KDC →
 * client after the hold time (once per request: the first reply bytes
 * after client bytes wait, the rest of that reply follows at once).
 */
#include "tt_kdc_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tt.h"

static unsigned relay_delay(const char *path)
{
	char buf[32] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1) {
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? (unsigned)strtoul(buf, NULL, 10) : 0;
}

static void relay_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
	}
}

static bool relay_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0) {
			if (n == -1 && errno == EINTR) {
				continue;
			}
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void relay_connection(const struct tt_kdc_relay *relay,
			     const struct tt_kdc *kdc,
			     int cfd)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(kdc->port)};
	struct pollfd p[2];
	bool hold = false;
	uint8_t buf[65536];
	int kfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, kdc->addr, &sin.sin_addr);
	if (kfd == -1 ||
	    connect(kfd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		_exit(1);
	}
	p[0].fd = cfd;
	p[1].fd = kfd;
	for (;;) {
		ssize_t n;

		p[0].events = p[1].events = POLLIN;
		if (poll(p, 2, -1) == -1) {
			if (errno == EINTR) {
				continue;
			}
			_exit(1);
		}
		if (p[0].revents != 0) {
			n = read(cfd, buf, sizeof(buf));
			if (n <= 0 || !relay_write_all(kfd, buf, (size_t)n)) {
				_exit(0);
			}
			hold = true;
		}
		if (p[1].revents != 0) {
			n = read(kfd, buf, sizeof(buf));
			if (n <= 0) {
				_exit(0);
			}
			if (hold) {
				int fd = open(relay->count_file,
					      O_WRONLY | O_APPEND | O_CLOEXEC);

				if (fd != -1) {
					(void)!write(fd, "x", 1);
					close(fd);
				}
				relay_sleep_ms(relay_delay(relay->delay_file));
				hold = false;
			}
			if (!relay_write_all(cfd, buf, (size_t)n)) {
				_exit(0);
			}
		}
	}
}

static void relay_main(const struct tt_kdc_relay *relay,
		       const struct tt_kdc *kdc,
		       int lfd)
{
	signal(SIGCHLD, SIG_IGN); /* connections reap themselves */
	for (;;) {
		int cfd = accept(lfd, NULL, NULL);

		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			_exit(1);
		}
		if (fork() == 0) {
			close(lfd);
			relay_connection(relay, kdc, cfd);
			_exit(0);
		}
		close(cfd);
	}
}

/* A blocking listener on 127.0.0.1, any port. */
static int relay_listen(uint16_t *pport)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 64) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
		if (lfd != -1) {
			close(lfd);
		}
		return -1;
	}
	*pport = ntohs(sin.sin_port);
	return lfd;
}

static int relay_destructor(struct tt_kdc_relay *relay)
{
	if (relay->pid > 0) {
		kill(-relay->pid, SIGKILL);
		waitpid(relay->pid, NULL, 0);
	}
	if (relay->dir != NULL) {
		tt_rmtree(relay->dir);
	}
	return 0;
}

static bool relay_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (f == NULL) {
		return false;
	}
	ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok;
}

/*
 * The KDC's krb5.conf with its two kdc lines replaced by the relay (MIT
 * here reads "tcp/host" as a host name, so TCP is asked for with
 * udp_preference_limit).
 */
static char *relay_krb5_conf(TALLOC_CTX *mem_ctx,
			     const struct tt_kdc *kdc,
			     uint16_t port)
{
	char *text = NULL, *lines, *at;
	FILE *f = fopen(kdc->krb5_conf, "r");
	char buf[8192];
	size_t n;

	if (f == NULL) {
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	lines =
	    talloc_asprintf(mem_ctx, "\t\tkdc = tcp/%s:%u\n\t\tkdc = %s:%u\n",
			    kdc->addr, kdc->port, kdc->addr, kdc->port);
	at = lines != NULL ? strstr(buf, lines) : NULL;
	if (at != NULL && strncmp(buf, "[libdefaults]\n", 14) == 0) {
		*at = '\0';
		/* udp_preference_limit = 1: every request over TCP */
		text = talloc_asprintf(mem_ctx,
				       "[libdefaults]\n"
				       "\tudp_preference_limit = 1\n"
				       "%s\t\tkdc = 127.0.0.1:%u\n%s",
				       buf + strlen("[libdefaults]\n"), port,
				       at + strlen(lines));
	}
	talloc_free(lines);
	return text;
}

struct tt_kdc_relay *tt_kdc_relay_start(TALLOC_CTX *mem_ctx,
					const struct tt_kdc *kdc,
					unsigned delay_ms)
{
	struct tt_kdc_relay *relay = talloc_zero(mem_ctx, struct tt_kdc_relay);
	char *conf;
	int lfd;

	if (relay == NULL) {
		return NULL;
	}
	talloc_set_destructor(relay, relay_destructor);
	relay->dir = tt_mkdtemp(relay);
	if (relay->dir == NULL) {
		talloc_free(relay);
		return NULL;
	}
	relay->krb5_conf = talloc_asprintf(relay, "%s/krb5.conf", relay->dir);
	relay->delay_file = talloc_asprintf(relay, "%s/delay", relay->dir);
	relay->count_file = talloc_asprintf(relay, "%s/held", relay->dir);
	lfd = relay_listen(&relay->port);
	conf = lfd == -1 ? NULL : relay_krb5_conf(relay, kdc, relay->port);
	if (conf == NULL || !relay_write_file(relay->krb5_conf, conf) ||
	    !relay_write_file(relay->count_file, "")) {
		fprintf(stderr, "tt_kdc_relay: cannot set up in %s\n",
			relay->dir);
		if (lfd != -1) {
			close(lfd);
		}
		talloc_free(relay);
		return NULL;
	}
	tt_kdc_relay_set_delay(relay, delay_ms);
	relay->pid = fork();
	if (relay->pid == 0) {
		setpgid(0, 0);
		relay_main(relay, kdc, lfd);
		_exit(1);
	}
	if (relay->pid > 0) {
		/* both sides: no race over who makes the group first */
		setpgid(relay->pid, relay->pid);
	}
	close(lfd);
	if (relay->pid < 0) {
		talloc_free(relay);
		return NULL;
	}
	return relay;
}

void tt_kdc_relay_set_delay(struct tt_kdc_relay *relay, unsigned delay_ms)
{
	char text[32];

	snprintf(text, sizeof(text), "%u\n", delay_ms);
	(void)relay_write_file(relay->delay_file, text);
}

unsigned tt_kdc_relay_held(const struct tt_kdc_relay *relay)
{
	struct stat st;

	return stat(relay->count_file, &st) == 0 ? (unsigned)st.st_size : 0;
}

void tt_kdc_relay_setenv(const struct tt_kdc_relay *relay)
{
	setenv("KRB5_CONFIG", relay->krb5_conf, 1);
}
