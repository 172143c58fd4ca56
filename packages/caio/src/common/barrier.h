/* Memory ordering for the rings shared with the kernel.
 *
 * The SQ and CQ rings are plain memory that the kernel reads and writes
 * concurrently. The protocol is the usual single-producer/single-consumer
 * one: a producer fills an entry, then publishes it by storing the new tail
 * with release semantics; the consumer loads the tail with acquire
 * semantics before reading entries, and hands them back by storing the new
 * head with release semantics (so the producer cannot overwrite an entry we
 * are still reading). These are the kernel's smp_load_acquire /
 * smp_store_release, spelled with the compiler's __atomic builtins. */
#ifndef CAIO_URING_BARRIER_H
#define CAIO_URING_BARRIER_H

#define smp_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define smp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* A field the kernel may change at any time, read without ordering. */
#define read_once(p) __atomic_load_n((p), __ATOMIC_RELAXED)
/* Full barrier: orders an earlier store before a later load (SQPOLL: tail
 * store, then the NEED_WAKEUP flag load). */
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

#endif
