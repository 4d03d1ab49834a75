#ifndef TSTREAM_GSSAPI_H
#define TSTREAM_GSSAPI_H
#include <tsocket.h>
#endif
