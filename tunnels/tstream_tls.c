/* tstream_tls: being written */
#include "tstream_tls.h"
