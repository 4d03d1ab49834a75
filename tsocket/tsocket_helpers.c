/* tsocket_helpers.c: being written */
#include "tsocket_internal.h"
