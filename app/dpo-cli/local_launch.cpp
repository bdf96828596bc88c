#include "local_launch.h"

#include "engine/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace dpocli {

namespace {

std::vector<std::string> g_commandLine;
std::atomic<int> g_signal { 0 };
void onLauncherSignal(int sig)
{
    g_signal.store(sig);
}

// A port the kernel considers free on loopback right now (torchrun --standalone does the same).
int freeLoopbackPort()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        throw dpo::Error("--nproc: cannot open a socket to find a free port");
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0
        || ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
        ::close(fd);
        throw dpo::Error("--nproc: cannot find a free loopback port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string describe(int status)
{
    if (WIFSIGNALED(status))
        return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " ("
            + strsignal(WTERMSIG(status)) + ")";
    return "exited with code " + std::to_string(WEXITSTATUS(status));
}

int exitCodeOf(int status)
{
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

} // namespace

void setCommandLine(int argc, char **argv)
{
    g_commandLine.assign(argv, argv + argc);
}
const std::vector<std::string> &commandLine()
{
    return g_commandLine;
}

std::vector<std::string> withoutOption(const std::vector<std::string> &args, const std::string &option)
{
    std::vector<std::string> out;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == option) {
            ++i; // and its value
            continue;
        }
        if (args[i].rfind(option + "=", 0) == 0)
            continue;
        out.push_back(args[i]);
    }
    return out;
}

int launchLocalRanks(int nproc, const std::vector<std::string> &args, int graceSeconds)
{
    const int port = freeLoopbackPort();
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    std::vector<pid_t> pids(size_t(nproc), -1);
    for (int r = 0; r < nproc; ++r) {
        const pid_t pid = ::fork();
        if (pid < 0)
            throw dpo::Error("--nproc: cannot start rank " + std::to_string(r) + ": " + std::strerror(errno));
        if (pid == 0) {
            ::setenv("RANK", std::to_string(r).c_str(), 1);
            ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
            ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
            ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
            ::setenv("MASTER_ADDR", "127.0.0.1", 1);
            ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
            // The cores are shared between the ranks unless the user said otherwise.
            ::setenv("OMP_NUM_THREADS", std::to_string(std::max(1u, cores / unsigned(nproc))).c_str(), 0);
            std::vector<char *> argv;
            for (const auto &a : args)
                argv.push_back(const_cast<char *>(a.c_str()));
            argv.push_back(nullptr);
            ::execv("/proc/self/exe", argv.data());
            std::fprintf(stderr, "dpo-cli: error: rank %d: cannot run /proc/self/exe: %s\n", r, std::strerror(errno));
            ::_exit(127);
        }
        pids[size_t(r)] = pid;
    }

    struct sigaction sa { };
    sa.sa_handler = onLauncherSignal;
    ::sigemptyset(&sa.sa_mask);
    struct sigaction oldInt {
    }, oldTerm {};
    ::sigaction(SIGINT, &sa, &oldInt);
    ::sigaction(SIGTERM, &sa, &oldTerm);

    int running = nproc;
    int firstFailure = 0;
    bool forwarded = false;
    std::chrono::steady_clock::time_point failedAt;
    int escalation = 0; // 0: waiting, 1: SIGTERM sent, 2: SIGKILL sent
    while (running > 0) {
        if (const int sig = g_signal.load(); sig && !forwarded) {
            for (pid_t pid : pids)
                if (pid > 0)
                    ::kill(pid, SIGTERM); // the ranks agree on a step; rank 0 writes the checkpoint
            forwarded = true;
        }
        int status = 0;
        const pid_t done = ::waitpid(-1, &status, WNOHANG);
        if (done > 0) {
            for (size_t r = 0; r < pids.size(); ++r) {
                if (pids[r] != done)
                    continue;
                pids[r] = -1;
                --running;
                const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                if (failed && firstFailure == 0) {
                    firstFailure = exitCodeOf(status);
                    failedAt = std::chrono::steady_clock::now();
                    std::fprintf(stderr, "dpo-cli: error: rank %zu of %d %s; stopping the other ranks\n", r, nproc,
                        describe(status).c_str());
                }
            }
            continue;
        }
        if (firstFailure != 0 && running > 0) {
            const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - failedAt).count();
            const int want = waited > graceSeconds + 10 ? 2 : waited > graceSeconds ? 1 : 0;
            if (want > escalation) {
                escalation = want;
                for (pid_t pid : pids)
                    if (pid > 0)
                        ::kill(pid, want == 2 ? SIGKILL : SIGTERM);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::sigaction(SIGINT, &oldInt, nullptr);
    ::sigaction(SIGTERM, &oldTerm, nullptr);
    return firstFailure;
}

} // namespace dpocli
