/*
 * leaks: leaked-key reports over HTTP (leaks.c). The server hands it
 * GitHub's public keys at start and again on SIGHUP.
 */
#ifndef APIKEYD_HTTP_LEAKS_H
#define APIKEYD_HTTP_LEAKS_H

struct leak_keyring;

/* Replaces the keys that sign GitHub's reports (NULL: reports from GitHub are refused, 404); takes `kr`, frees the old set. */
void leaks_set_keyring(struct leak_keyring *kr);

#endif
