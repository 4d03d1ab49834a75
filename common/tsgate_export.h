/* SPDX-License-Identifier: MIT */
/*
 * Symbol visibility for tsgate's libraries. They are built with
 * -fvisibility=hidden; only definitions marked _PUBLIC_ are exported, so
 * a library's ABI is exactly its public header. Not installed.
 */
#ifndef TSGATE_EXPORT_H
#define TSGATE_EXPORT_H

#ifndef _PUBLIC_
#define _PUBLIC_ __attribute__((visibility("default")))
#endif

#endif
