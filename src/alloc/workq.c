/*
 * workq.c - a fixed pool of named worker threads fed by a FIFO queue: the
 * upload threads of a context (created once, upload_threads of them).  A
 * job is a function and its argument; the pool neither waits for jobs nor
 * knows what they do (callers count their own completions).  Freeing the
 * pool runs what is still queued, then joins the threads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"

struct job {
	workq_fn fn;
	void *arg;
	struct job *next;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail; /* lock */
	bool stop;		 /* lock */
	pthread_t *threads;
	unsigned n_threads;
};

static void *worker(void *arg)
{
	struct workq *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct job *j = q->head;

		if (!j) {
			if (q->stop)
				break;
			/* idle wait: woken by push or stop; nothing times out here */
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		pthread_mutex_unlock(&q->lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

struct workq *workq_new(unsigned threads, const char *name)
{
	struct workq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	if (threads == 0)
		threads = 1;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->threads = calloc(threads, sizeof(*q->threads));
	if (!q->threads)
		goto fail;
	for (unsigned i = 0; i < threads; i++) {
		char tname[32];

		if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
			log_err("%s: cannot start worker thread %u", name, i);
			break;
		}
		/* thread names are at most 15 characters */
		snprintf(tname, sizeof(tname), "%.10s-%u", name, i % 1000);
		tname[15] = '\0';
		pthread_setname_np(q->threads[i], tname);
		q->n_threads++;
	}
	if (q->n_threads == 0)
		goto fail;
	return q;
fail:
	free(q->threads);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
	return NULL;
}

int workq_push(struct workq *q, workq_fn fn, void *arg)
{
	struct job *j = malloc(sizeof(*j));
	int rc = 0;

	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->stop) {
		rc = -ESHUTDOWN;
		free(j);
	} else {
		if (q->tail)
			q->tail->next = j;
		else
			q->head = j;
		q->tail = j;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void workq_free(struct workq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
