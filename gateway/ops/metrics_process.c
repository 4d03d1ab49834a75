/* SPDX-License-Identifier: MIT */
/*
 * Process metrics from /proc/self: see metrics_process.h. The values are
 * what the Prometheus Go client's process collector reports, from the
 * same files, so dashboards made for other exporters work unchanged.
 */
#include "metrics_process.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <talloc.h>
#include <unistd.h>

struct process_stat {
	uint64_t utime, stime; /* clock ticks */
	uint64_t starttime;    /* clock ticks after boot */
	uint64_t vsize;        /* bytes */
	uint64_t rss;          /* pages */
};

/*
 * /proc/self/stat: the fields after "(comm)" (comm may hold spaces and
 * parentheses, so parse from the last ')'), proc(5) numbering.
 */
static bool read_stat(struct process_stat *st)
{
	char buf[1024];
	const char *p;
	unsigned long long utime, stime, start, vsize, rss;
	size_t n;
	FILE *f = fopen("/proc/self/stat", "re");

	if (f == NULL) {
		return false;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* from field 3 (state): 14 utime, 15 stime, 22 start, 23, 24 */
	if (p == NULL ||
	    sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
		   "%*d %*d %*d %*d %*d %*d %llu %llu %llu",
		   &utime, &stime, &start, &vsize, &rss) != 5) {
		return false;
	}
	st->utime = utime;
	st->stime = stime;
	st->starttime = start;
	st->vsize = vsize;
	st->rss = rss;
	return true;
}

/* Boot time, seconds since the epoch ("btime" in /proc/stat). */
static bool read_btime(uint64_t *btime)
{
	char line[256];
	unsigned long long v;
	bool found = false;
	FILE *f = fopen("/proc/stat", "re");

	if (f == NULL) {
		return false;
	}
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		found = sscanf(line, "btime %llu", &v) == 1;
	}
	fclose(f);
	*btime = v;
	return found;
}

/* Open descriptors, not counting the one that reads the directory. */
static bool count_fds(uint64_t *count)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	uint64_t n = 0;

	if (d == NULL) {
		return false;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) {
			n++;
		}
	}
	closedir(d);
	*count = n;
	return true;
}

static void gauge(char **out,
		  const char *name,
		  const char *type,
		  const char *help,
		  const char *value)
{
	talloc_asprintf_addbuf(out, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name,
			       help, name, type, name, value);
}

void tsgate_metrics_process_render(char **out)
{
	struct process_stat st;
	struct rlimit rl;
	long tck = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	uint64_t btime, fds;
	char v[64];
	bool have_stat = tck > 0 && page > 0 && read_stat(&st);

	if (have_stat) {
		snprintf(v, sizeof(v), "%.2f",
			 (double)(st.utime + st.stime) / (double)tck);
		gauge(out, "process_cpu_seconds_total", "counter",
		      "Total user and system CPU time spent in seconds.", v);
	}
	if (count_fds(&fds)) {
		snprintf(v, sizeof(v), "%" PRIu64, fds);
		gauge(out, "process_open_fds", "gauge",
		      "Number of open file descriptors.", v);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		snprintf(v, sizeof(v), "%llu",
			 rl.rlim_cur == RLIM_INFINITY
			     ? (unsigned long long)UINT64_MAX
			     : (unsigned long long)rl.rlim_cur);
		gauge(out, "process_max_fds", "gauge",
		      "Maximum number of open file descriptors.", v);
	}
	if (have_stat) {
		snprintf(v, sizeof(v), "%" PRIu64, st.vsize);
		gauge(out, "process_virtual_memory_bytes", "gauge",
		      "Virtual memory size in bytes.", v);
		snprintf(v, sizeof(v), "%" PRIu64, st.rss * (uint64_t)page);
		gauge(out, "process_resident_memory_bytes", "gauge",
		      "Resident memory size in bytes.", v);
	}
	if (have_stat && read_btime(&btime)) {
		snprintf(v, sizeof(v), "%.2f",
			 (double)btime + (double)st.starttime / (double)tck);
		gauge(out, "process_start_time_seconds", "gauge",
		      "Start time of the process since unix epoch in seconds.",
		      v);
	}
}
