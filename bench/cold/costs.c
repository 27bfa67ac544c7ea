/* Unit costs on this machine, for bench/REPORT.md's diagnosis: what one CPUID (a VM exit under
 * a hypervisor), one trivial system call, one anonymous page fault, one page pre-faulted by
 * MAP_POPULATE and one mmap+munmap pair cost. Medians of repeated batches, in ns.
 *
 *   musl-gcc -static -O2 -o /tmp/costs bench/cold/costs.c && /tmp/costs     # prints JSON
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define BATCHES 31
static double median(double *v) {
	qsort(v, BATCHES, sizeof *v, cmp);
	return v[BATCHES / 2];
}

int main(void) {
	double v[BATCHES];
	unsigned a, b, c, d;
	enum { N = 200, PAGES = 64 };
	for (int k = 0; k < BATCHES; k++) {
		double t = now();
		for (int i = 0; i < N; i++) __cpuid_count(7, 0, a, b, c, d);
		v[k] = (now() - t) / N;
	}
	double cpuid = median(v);
	for (int k = 0; k < BATCHES; k++) {
		double t = now();
		for (int i = 0; i < N; i++) syscall(SYS_getppid);
		v[k] = (now() - t) / N;
	}
	double sys = median(v);
	for (int k = 0; k < BATCHES; k++) {
		char *p = mmap(0, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double t = now();
		for (int i = 0; i < PAGES; i++) p[i * 4096] = 1;
		v[k] = (now() - t) / PAGES;
		munmap(p, PAGES * 4096);
	}
	double fault = median(v);
	for (int k = 0; k < BATCHES; k++) {
		double t = now();
		char *p = mmap(0, PAGES * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		v[k] = (now() - t) / PAGES;
		p[0] = 1;
		munmap(p, PAGES * 4096);
	}
	double populate = median(v);
	for (int k = 0; k < BATCHES; k++) {
		double t = now();
		for (int i = 0; i < N; i++) {
			char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			p[0] = 1;
			munmap(p, 4096);
		}
		v[k] = (now() - t) / N;
	}
	double churn = median(v);
	printf("{\"cpuid_ns\":%.0f,\"syscall_ns\":%.0f,\"anon_fault_ns\":%.0f,"
	       "\"populate_per_page_ns\":%.0f,\"mmap_touch_munmap_4k_ns\":%.0f}\n",
	       cpuid, sys, fault, populate, churn);
	return 0;
}
