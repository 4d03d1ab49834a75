/* SPDX-License-Identifier: MIT */
/*
 * Intrusive doubly linked lists with a head pointer: an element has `prev`
 * and `next` members, the list is a pointer to its first element. Used by
 * the daemon for its connections, listeners and HTTP clients. Not
 * installed.
 */
#ifndef TSGATE_DLIST_H
#define TSGATE_DLIST_H

/* Put p first in the list whose head is `head` (an lvalue). */
#define TSG_DLIST_ADD(head, p)              \
	do {                                \
		(p)->prev = NULL;           \
		(p)->next = (head);         \
		if ((head) != NULL) {       \
			(head)->prev = (p); \
		}                           \
		(head) = (p);               \
	} while (0)

/* Take p out of the list whose head is `head`; p's links are cleared. */
#define TSG_DLIST_REMOVE(head, p)                    \
	do {                                         \
		if ((p)->prev != NULL) {             \
			(p)->prev->next = (p)->next; \
		} else if ((head) == (p)) {          \
			(head) = (p)->next;          \
		}                                    \
		if ((p)->next != NULL) {             \
			(p)->next->prev = (p)->prev; \
		}                                    \
		(p)->prev = (p)->next = NULL;        \
	} while (0)

#endif
