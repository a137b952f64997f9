/*
 * workq.c - a fixed pool of named threads fed by one bounded FIFO queue.
 * The vendor runs two: "worker" (disk I/O of requests) and "forward"
 * (blocking calls to the next vendor of a chain), so that a worker never
 * waits on the network and the loop thread never waits on anything.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vendor.h"

struct vworkq_task {
	vworkq_fn fn;
	void *arg;
	struct vworkq_task *next;
};

struct vworkq {
	char name[16];
	pthread_mutex_t lock;
	pthread_cond_t cond;		 /* a task was queued, or stopping */
	struct vworkq_task *head, *tail; /* lock */
	size_t queued, max_queued;	 /* lock */
	bool stopping;			 /* lock */
	unsigned nthreads;
	pthread_t *threads;
};

static void *vworkq_main(void *arg)
{
	struct vworkq *q = arg;

	for (;;) {
		struct vworkq_task *t;

		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		t = q->head;
		if (!t) { /* stopping and empty */
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		q->head = t->next;
		if (!q->head)
			q->tail = NULL;
		q->queued--;
		pthread_mutex_unlock(&q->lock);
		t->fn(t->arg, false);
		free(t);
	}
}

struct vworkq *vworkq_new(const char *name, unsigned threads, size_t max_queued)
{
	struct vworkq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	snprintf(q->name, sizeof(q->name), "%s", name);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->max_queued = max_queued;
	q->threads = calloc(threads, sizeof(*q->threads));
	if (!q->threads)
		goto fail;
	for (unsigned i = 0; i < threads; i++) {
		char tn[32];

		if (pthread_create(&q->threads[i], NULL, vworkq_main, q) != 0) {
			log_err("%s: cannot start thread %u", name, i);
			goto fail;
		}
		q->nthreads++;
		snprintf(tn, sizeof(tn), "%.10s-%u", name, i);
		tn[15] = '\0'; /* the kernel's limit for thread names */
		pthread_setname_np(q->threads[i], tn);
	}
	return q;
fail:
	vworkq_free(q);
	return NULL;
}

int vworkq_push(struct vworkq *q, vworkq_fn fn, void *arg)
{
	struct vworkq_task *t = malloc(sizeof(*t));
	int rc = 0;

	if (!t)
		return -ENOMEM;
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->stopping)
		rc = -ESHUTDOWN;
	else if (q->queued >= q->max_queued)
		rc = -EAGAIN;
	if (rc == 0) {
		if (q->tail)
			q->tail->next = t;
		else
			q->head = t;
		q->tail = t;
		q->queued++;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	if (rc < 0)
		free(t);
	return rc;
}

void vworkq_free(struct vworkq *q)
{
	struct vworkq_task *t;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	t = q->head;
	q->head = q->tail = NULL;
	q->queued = 0;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	while (t) {
		struct vworkq_task *next = t->next;

		t->fn(t->arg, true);
		free(t);
		t = next;
	}
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
