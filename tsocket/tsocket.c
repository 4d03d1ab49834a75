/* tsocket.c: being written */
#include "tsocket_internal.h"
