#ifndef TSTREAM_TLS_H
#define TSTREAM_TLS_H
#include <tsocket.h>
#endif
