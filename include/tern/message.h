/* SPDX-License-Identifier: MIT */
/*
 * The message: envelope (one sender, one recipient: tern spools one message
 * per recipient so that each has its own id, queue, attempts and outcome),
 * metadata (key -> JSON value text), and the RFC 5322 data (header section
 * and body, CRLF line endings) with header access.
 *
 * A message is owned by one shard at a time. Lua sees it through a handle
 * (lua_message.c) that message_free() invalidates.
 */
#ifndef TERN_MESSAGE_H
#define TERN_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/spool.h"
#include "tern/util.h"

struct meta_entry {
	char *key;
	char *json; /* the value as JSON text */
	size_t json_len;
};

struct message {
	struct spool_id id;
	char *sender;    /* "" for the null reverse-path */
	char *recipient; /* NULL for a transaction message that still has several */
	double created;  /* epoch seconds */
	unsigned attempts; /* delivery attempts so far */
	double due;        /* epoch seconds of the next attempt; 0 = now */
	struct buf data;
	size_t size; /* size of the spooled data, known even when data is not loaded */
	struct meta_entry *meta;
	size_t n_meta, cap_meta;
	int lua_handle; /* registry ref of the Lua handle, or LUA_NOREF */
	void *lua_state;
	/* Set by the binding that handed the message to Lua; message_free() calls it. */
	void (*release)(struct message *m);
};

struct message *message_new(const char *sender, const char *recipient);
/* The message's size: its loaded data, or the spooled size when data is not loaded. */
size_t message_size(const struct message *m);
void message_free(struct message *m);
/* Let go of the message's Lua handle now, on the thread that made it: it may be freed on another. */
void message_unbind(struct message *m);
/* Bytes of RAM the message holds, its own struct included. */
size_t message_footprint(const struct message *m);
/* A copy with its own id, data and meta (for one recipient of a transaction). */
struct message *message_clone(const struct message *m, const char *recipient);

/* Meta: value is JSON text; set replaces. get returns NULL when absent. */
int message_set_meta(struct message *m, const char *key, const char *json, size_t len);
const struct meta_entry *message_get_meta(const struct message *m, const char *key);
/* A meta value that is a JSON string, decoded into out; -ENOENT when absent or not a string. */
int message_meta_string(const struct message *m, const char *key, struct buf *out);

/* Header section: up to and including the blank line (or the whole data when there is none). */
size_t message_header_len(const struct message *m);
/* One header field: offsets into m->data. */
struct message_field {
	size_t start, len;       /* the whole field, continuation lines and CRLF included */
	size_t name_len;         /* the name starts at start */
	size_t value, value_len; /* after "Name:" and leading WSP, without the final CRLF */
};

/* Walk the header section: *off starts at 0. 0 with f filled, or -ENOENT at its end. */
int message_next_header(const struct message *m, size_t *off, struct message_field *f);
/* The index-th (0-based) field named name (case-insensitive), or -ENOENT. */
int message_find_header(const struct message *m, const char *name, size_t index,
			struct message_field *f);
/* Insert a complete, formatted field ("Name: value\r\n") at the top. */
int message_prepend_raw(struct message *m, const char *field, size_t len);
int message_prepend_header(struct message *m, const char *name, const char *value);
/* Replace the first field named name, or prepend one when there is none. */
int message_set_header(struct message *m, const char *name, const char *value);
/* Remove every field named name; returns how many. */
int message_remove_header(struct message *m, const char *name);

/*
 * Metadata as JSON for the spool: {"sender":..,"recipient":..,"created":..,
 * "size":..,"queue":..,"meta":{...}}; queue is derived for `tern spool list`.
 */
int message_encode_spool_meta(const struct message *m, struct buf *out);
/* Rebuild envelope and meta from message_encode_spool_meta() output. */
int message_decode_spool_meta(struct message *m, const char *json, size_t len,
			      struct tern_err *err);
/* The scheduled queue name: meta queue, or campaign:tenant@domain (parts optional). */
int message_queue_name(const struct message *m, struct buf *out);

#endif
