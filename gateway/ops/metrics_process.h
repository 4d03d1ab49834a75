/* SPDX-License-Identifier: MIT */
/*
 * The standard process metrics of Prometheus client libraries, for the
 * process that renders them: process_cpu_seconds_total,
 * process_open_fds, process_max_fds, process_virtual_memory_bytes,
 * process_resident_memory_bytes, process_start_time_seconds. Read from
 * /proc/self at each scrape (Linux); with workers, each worker renders
 * its own and the merge labels them worker="N".
 */
#ifndef TSGATE_METRICS_PROCESS_H
#define TSGATE_METRICS_PROCESS_H

/**
 * @brief Append the process families to *out (talloc_asprintf_addbuf).
 *        A value that cannot be read leaves its family out.
 */
void tsgate_metrics_process_render(char **out);

#endif /* TSGATE_METRICS_PROCESS_H */
