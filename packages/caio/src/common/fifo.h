/* Singly linked FIFOs of requests (waiting lists, completion lists),
 * through caio_req.next. A request is on at most one list at a time. */
#ifndef CAIO_FIFO_H
#define CAIO_FIFO_H

#include "caio.h"

static inline void caio_fifo_push(caio_req **head, caio_req **tail, caio_req *req)
{
    req->next = NULL;
    if (*tail != NULL)
        (*tail)->next = req;
    else
        *head = req;
    *tail = req;
}

/* Put a request back where it was taken from (a failed submission). */
static inline void caio_fifo_push_front(caio_req **head, caio_req **tail, caio_req *req)
{
    req->next = *head;
    *head = req;
    if (*tail == NULL)
        *tail = req;
}

static inline caio_req *caio_fifo_pop(caio_req **head, caio_req **tail)
{
    caio_req *req = *head;

    if (req != NULL) {
        *head = req->next;
        if (*head == NULL)
            *tail = NULL;
        req->next = NULL;
    }
    return req;
}

/* Unlink req; 1 when it was on the list. Linear: only cancellation uses it. */
static inline int caio_fifo_remove(caio_req **head, caio_req **tail, caio_req *req)
{
    caio_req *prev = NULL;

    for (caio_req *it = *head; it != NULL; prev = it, it = it->next) {
        if (it != req)
            continue;
        if (prev != NULL)
            prev->next = it->next;
        else
            *head = it->next;
        if (*tail == it)
            *tail = prev;
        it->next = NULL;
        return 1;
    }
    return 0;
}

#endif
