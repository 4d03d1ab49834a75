/* SPDX-License-Identifier: MIT */
/*
 * tsgate --version: the version line, and with verbose the libraries it
 * runs with, how it was built and what it can do (like haproxy -vv).
 */
#ifndef TSGATE_VERSION_INFO_H
#define TSGATE_VERSION_INFO_H

#include <stdbool.h>
#include <stdio.h>

/**
 * @brief Print tsgate's version to out.
 *
 * @param out      Where to print.
 * @param verbose  false: one line "tsgate VERSION". true: also every
 *                 library with the version loaded at run time (where
 *                 the library can tell) and the one built against, the
 *                 build options and the built-in features.
 */
void tsgate_version_print(FILE *out, bool verbose);

#endif
