/* tstream_gssapi: being written */
#include "tstream_gssapi.h"
