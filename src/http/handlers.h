/*
 * handlers: the HTTP face of apikeyd: routes each request, authenticates
 * it, validates its body and turns core's answers into status codes and
 * JSON. Never touches SQL; never logs a key.
 */
#ifndef APIKEYD_HTTP_HANDLERS_H
#define APIKEYD_HTTP_HANDLERS_H

#include <h2o.h>

struct keys;

/* Registers apikeyd's handler on `path`; `keys` must outlive the server. */
void handlers_register(h2o_pathconf_t *path, struct keys *keys);

#endif
