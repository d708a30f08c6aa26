/* pid_cache.c - getpid() answered from memory in the sluice binary.
 *
 * libzmq asks getpid() on every signal between a socket's thread and its
 * I/O thread (its check for a fork), five to eight times a message in each
 * of the frontend, the broker and the workers; glibc stopped caching the
 * pid in 2.25, so each is a system call, and a costly one on a VM. A
 * definition in the executable takes the place of libc's for every shared
 * library (ELF interposition); the cache is dropped in the child of a
 * fork(), so a forked process still sees its own pid. posix_spawn()'s child
 * runs no code of ours before exec(). */
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static pid_t cached_pid;

static void
pid_cache_forget(void)
{
    __atomic_store_n(&cached_pid, 0, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void
pid_cache_init(void)
{
    pthread_atfork(NULL, NULL, pid_cache_forget);
}

pid_t
getpid(void)
{
    pid_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);

    if (pid == 0) {
        pid = (pid_t)syscall(SYS_getpid);
        __atomic_store_n(&cached_pid, pid, __ATOMIC_RELAXED);
    }
    return pid;
}
