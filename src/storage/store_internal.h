/*
 * What store.c asks of a provider (store_local.c, store_s3.c for S3 and
 * GCS). store.c validates keys and locations, turns locations into keys,
 * hashes what is written (SHA-256, size) and frees the writer; a provider
 * only moves bytes. Keys reaching a provider are valid
 * (store_key_valid()). Not for use outside src/storage.
 */
#ifndef OPS_STORAGE_STORE_INTERNAL_H
#define OPS_STORAGE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "storage/store.h"

struct store_provider_ops {
	/* Make s->impl from s->cfg; fails with OPS_E_CONFIG naming the
	 * variable. */
	int (*open)(struct store *s, struct ops_err *err);
	void (*close)(struct store *s); /* frees s->impl */
	/* *w: the provider's writer state */
	int (*w_open)(struct store *s, const char *key, const char *ctype,
		      void **w, struct ops_err *err);
	int (*w_write)(void *w, const void *data, size_t len,
		       struct ops_err *err);
	/* makes the object visible; frees w whatever the result */
	int (*w_commit)(void *w, struct ops_err *err);
	void (*w_abort)(void *w); /* frees w */
	int (*del)(struct store *s, const char *key, struct ops_err *err);
	int (*exists)(struct store *s, const char *key, struct ops_err *err);
	/* fn gets keys (relative, as written) starting with prefix */
	int (*list)(struct store *s, const char *prefix,
		    int (*fn)(void *arg, const char *key), void *arg,
		    struct ops_err *err);
	/* expires_s is already checked (1..604800) */
	int (*url)(struct store *s, const char *key, long expires_s, char **url,
		   struct ops_err *err);
	/* store_sweep(); cutoff: UTC seconds, older goes */
	int (*sweep)(struct store *s, const char *prefix, time_t cutoff,
		     int *removed, struct ops_err *err);
};

struct store {
	enum store_provider provider;
	const struct ops_config *cfg;
	const volatile sig_atomic_t *stop;
	const struct store_provider_ops *ops;
	/* the location of key K is root + K: "/abs/dir/",
	 * "s3://bucket/privacy-exports/", "gs://bucket/privacy-exports/" */
	char *root;
	void *impl;
};

extern const struct store_provider_ops store_local_ops;
extern const struct store_provider_ops store_s3_ops;
extern const struct store_provider_ops store_gcs_ops;

/* The prefix of object names in buckets. */
#define STORE_BUCKET_PREFIX "privacy-exports/"
/* Longest key (store.h) */
#define STORE_MAX_KEY 900

/* Is key a valid object key? as_prefix: a list prefix, which may be
 * empty, may end with '/' and may end in a partial segment. */
bool store_key_valid(const char *key, bool as_prefix);

#endif
