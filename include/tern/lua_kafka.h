/* SPDX-License-Identifier: MIT */
/*
 * tern.kafka: Kafka producers for policy (log hooks' senders, lua/tern/kafka.lua).
 * `tern.kafka.producer{ brokers, topic, timeout, properties }` returns a
 * producer of the calling shard; `producer:send(messages)` yields until every
 * message is acknowledged or failed, and returns true, or nil and why.
 */
#ifndef TERN_LUA_KAFKA_H
#define TERN_LUA_KAFKA_H

#include <lua.h>

/* Called while the global `tern` table is on top of the stack: sets tern.kafka. */
void lua_kafka_open(lua_State *L);

#endif
