/* tsocket_bsd.c: being written */
#include "tsocket_internal.h"
