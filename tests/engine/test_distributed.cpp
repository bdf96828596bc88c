// Data-parallel DPO on c10d's Gloo over loopback (issue 16): torchrun's variables, `dpo-cli train
// --nproc`, 2 ranks x 2 pairs against 1 rank x 4 pairs, resume across world sizes, ZeRO-1, a killed and
// a hung rank, a stop signal.
#include "engine/distributed/communicator.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace test_distributed { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Sets environment variables for one scope and restores what was there.
class ScopedEnv {
public:
    ScopedEnv(std::map<std::string, const char *> values)
    {
        for (const char *name :
            { "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT" }) {
            const char *old = std::getenv(name);
            m_saved[name] = old ? std::optional<std::string>(old) : std::nullopt;
            ::unsetenv(name);
        }
        for (const auto &[name, value] : values)
            ::setenv(name.c_str(), value, 1);
    }
    ~ScopedEnv()
    {
        for (const auto &[name, value] : m_saved)
            value ? ::setenv(name.c_str(), value->c_str(), 1) : ::unsetenv(name.c_str());
    }

private:
    std::map<std::string, std::optional<std::string>> m_saved;
};

std::string tempDir(const std::string &name)
{
    auto p = fs::temp_directory_path() / ("dpo_dist_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::vector<json> trainMetrics(const std::string &dir)
{
    std::vector<json> out;
    std::ifstream f(fs::path(dir) / "metrics.jsonl");
    std::string line;
    while (std::getline(f, line))
        if (auto j = json::parse(line); j.contains("loss"))
            out.push_back(j);
    return out;
}

void expectSameTrajectory(const std::vector<json> &a, const std::vector<json> &b, double tol)
{
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].at("step"), b[i].at("step"));
        EXPECT_EQ(a[i].at("num_tokens"), b[i].at("num_tokens")) << "step " << i + 1;
        for (const char *k : { "loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins",
                 "rewards/accuracies", "logps/chosen", "logps/rejected", "learning_rate" })
            EXPECT_NEAR(a[i].at(k).get<double>(), b[i].at(k).get<double>(),
                tol * std::max(1.0, std::abs(a[i].at(k).get<double>())))
                << "step " << a[i].at("step") << " " << k;
    }
}

void expectSameWeights(const std::string &dirA, const std::string &dirB, double tol)
{
    auto a = dpo::SafetensorsFile::open((fs::path(dirA) / "model.safetensors").string());
    auto b = dpo::SafetensorsFile::open((fs::path(dirB) / "model.safetensors").string());
    ASSERT_EQ(a.names(), b.names());
    for (const auto &name : a.names())
        EXPECT_TRUE(torch::allclose(a.tensor(name), b.tensor(name), 0, tol)) << name;
}

// The fixture run of these tests; world size and batch come from the caller. A batch of 4 and two
// batches of 2 round differently (~1e-7 relative in the gradients); AdamW divides each gradient by its
// own running magnitude, so on coordinates whose gradient is almost zero (embedding rows of rare tokens)
// that rounding becomes an update of up to the learning rate: measured 2.5e-5 after 4 steps at lr 1e-3.
// lr 1e-4 keeps such coordinates within the 1e-5 the weights are compared at.
std::string trainCommand(const std::string &out, const std::string &extra)
{
    return dpotest::cliPath() + " train --model " + dpotest::fixture("llama-gqa/ref") + " --dataset "
        + dpotest::fixture("llama-gqa/pairs.jsonl") + " --output-dir " + out
        + " --learning-rate 1e-4 --lr-scheduler constant --max-length 0 --seed 11 --device cpu --threads 1 " + extra;
}

int freePort()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// Starts `cmd` as ranks 0 and 1 of a torchrun-style run on loopback (the variables set by hand); rank 0's
// stderr goes to rank0Stderr. A pid of -1: fork failed.
std::vector<pid_t> startTwoRanks(const std::string &cmd, const std::string &rank0Stderr)
{
    const std::string port = std::to_string(freePort());
    std::vector<pid_t> pids;
    for (int rank = 0; rank < 2; ++rank) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::setenv("RANK", std::to_string(rank).c_str(), 1);
            ::setenv("WORLD_SIZE", "2", 1);
            ::setenv("MASTER_ADDR", "127.0.0.1", 1);
            ::setenv("MASTER_PORT", port.c_str(), 1);
            freopen("/dev/null", "w", stdout);
            freopen(rank == 0 ? rank0Stderr.c_str() : "/dev/null", "w", stderr);
            execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char *)nullptr);
            _exit(127);
        }
        pids.push_back(pid);
    }
    return pids;
}

// Seconds until `pid` exits (its status in *status), or -1 after 60 s (it is then killed).
double waitUpTo60Seconds(pid_t pid, int *status)
{
    const auto start = std::chrono::steady_clock::now();
    while (::waitpid(pid, status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() - start >= std::chrono::seconds(60)) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

TEST(DistributedEnv, ReadsTorchrunVariablesAndNamesBadOnes)
{
    {
        ScopedEnv env({});
        const dpo::DistributedEnv e = dpo::distributedEnvFromEnvironment();
        EXPECT_EQ(e.worldSize, 1);
        EXPECT_FALSE(e.distributed());
    }
    {
        ScopedEnv env({ { "RANK", "3" }, { "WORLD_SIZE", "8" }, { "LOCAL_RANK", "1" }, { "LOCAL_WORLD_SIZE", "2" },
            { "MASTER_ADDR", "node7" }, { "MASTER_PORT", "29400" } });
        const dpo::DistributedEnv e = dpo::distributedEnvFromEnvironment();
        EXPECT_EQ(e.rank, 3);
        EXPECT_EQ(e.worldSize, 8);
        EXPECT_EQ(e.localRank, 1);
        EXPECT_EQ(e.localWorldSize, 2);
        EXPECT_EQ(e.masterAddr, "node7");
        EXPECT_EQ(e.masterPort, 29400);
        EXPECT_TRUE(e.distributed());
        EXPECT_FALSE(e.isMain());
    }
    const std::vector<std::pair<std::map<std::string, const char *>, std::string>> bad = {
        { { { "RANK", "0" } }, "WORLD_SIZE" },
        { { { "WORLD_SIZE", "2" } }, "RANK" },
        { { { "RANK", "2" }, { "WORLD_SIZE", "2" } }, "RANK=2" },
        { { { "RANK", "0" }, { "WORLD_SIZE", "two" } }, "WORLD_SIZE=two" },
        { { { "RANK", "0" }, { "WORLD_SIZE", "2" }, { "MASTER_PORT", "70000" } }, "MASTER_PORT=70000" },
        { { { "RANK", "0" }, { "WORLD_SIZE", "2" }, { "LOCAL_RANK", "-1" } }, "LOCAL_RANK=-1" },
    };
    for (const auto &[values, needle] : bad) {
        ScopedEnv env(values);
        try {
            dpo::distributedEnvFromEnvironment();
            ADD_FAILURE() << "accepted; expected an error naming " << needle;
        } catch (const dpo::Error &e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    }
}

// Two ranks of 2 pairs follow one rank of 4 pairs (shuffled data, 2 epochs): the same global batch,
// gradients averaged by all-reduce. Rank 0 alone writes metrics, checkpoints and the final model.
TEST(DistributedTraining, TwoRanksFollowOneRankWithTheSameGlobalBatch)
{
    const std::string one = tempDir("one"), two = tempDir("two");
    auto r1 = dpotest::runCommand(trainCommand(one, "--batch-size 4 --max-steps 4 --save-steps 2"));
    ASSERT_EQ(r1.exitCode, 0) << r1.err;
    auto r2 = dpotest::runCommand(trainCommand(two, "--batch-size 2 --max-steps 4 --save-steps 2 --nproc 2"));
    ASSERT_EQ(r2.exitCode, 0) << r2.err;
    // One JSON document on stdout (rank 0's), as without --nproc.
    const json summary = json::parse(r2.out);
    EXPECT_EQ(summary.at("status"), "completed");
    EXPECT_EQ(summary.at("global_step"), 4);
    EXPECT_NE(r2.err.find("distributed: 2 ranks"), std::string::npos) << r2.err;

    const auto a = trainMetrics(one), b = trainMetrics(two);
    ASSERT_EQ(b.size(), 4u);
    expectSameTrajectory(a, b, 1e-5);
    expectSameWeights(one + "/final", two + "/final", 1e-5);
    EXPECT_TRUE(fs::exists(fs::path(two) / "checkpoint-2" / "trainer_state.json"));
    fs::remove_all(one);
    fs::remove_all(two);
}

// A checkpoint written by 2 ranks resumes on 1 rank, and one written by 1 rank resumes on 2, each
// continuing the trajectory of the uninterrupted run (same global batch of 4 pairs).
TEST(DistributedTraining, ResumesAcrossWorldSizes)
{
    const std::string full = tempDir("full");
    auto r = dpotest::runCommand(trainCommand(full, "--batch-size 4 --max-steps 4 --save-steps 2"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const auto reference = trainMetrics(full);

    for (const bool twoFirst : { true, false }) {
        const std::string dir = tempDir(twoFirst ? "two_then_one" : "one_then_two");
        const std::string first = twoFirst ? "--batch-size 2 --nproc 2" : "--batch-size 4";
        const std::string second = twoFirst ? "--batch-size 4" : "--batch-size 2 --nproc 2";
        r = dpotest::runCommand(trainCommand(dir, first + " --max-steps 2 --save-steps 2"));
        ASSERT_EQ(r.exitCode, 0) << r.err;
        r = dpotest::runCommand(trainCommand(dir, second + " --max-steps 4 --save-steps 2 --resume"));
        ASSERT_EQ(r.exitCode, 0) << r.err;
        EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
        expectSameTrajectory(reference, trainMetrics(dir), 1e-5);
        expectSameWeights(full + "/final", dir + "/final", 1e-5);
        fs::remove_all(dir);
    }
    fs::remove_all(full);
}

// ZeRO-1 (each rank keeps AdamW state for half the parameters, sends what it updated) follows plain
// data parallelism; its checkpoint holds the whole state, so it resumes on one rank.
TEST(DistributedTraining, ZeroStageOneEqualsPlainDataParallel)
{
    const std::string plain = tempDir("plain"), zero = tempDir("zero1");
    auto r = dpotest::runCommand(trainCommand(plain,
        "--batch-size 2 --max-steps 4 --save-steps 2 --nproc 2 "
        "--weight-decay 0.1"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    r = dpotest::runCommand(trainCommand(zero,
        "--batch-size 2 --max-steps 2 --save-steps 2 --nproc 2 "
        "--weight-decay 0.1 --zero-stage 1"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_NE(r.err.find("ZeRO-1: the AdamW state is sharded across 2 ranks"), std::string::npos) << r.err;
    // The sharded run's checkpoint, continued on one rank with the same global batch.
    r = dpotest::runCommand(trainCommand(zero,
        "--batch-size 4 --max-steps 4 --save-steps 2 --weight-decay 0.1 "
        "--resume"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    expectSameTrajectory(trainMetrics(plain), trainMetrics(zero), 1e-5);
    expectSameWeights(plain + "/final", zero + "/final", 1e-5);
    auto a = dpo::SafetensorsFile::open(plain + "/checkpoint-2/optimizer.safetensors");
    auto b = dpo::SafetensorsFile::open(zero + "/checkpoint-2/optimizer.safetensors");
    EXPECT_EQ(a.names(), b.names());
    fs::remove_all(plain);
    fs::remove_all(zero);
}

// torchrun-style launch (the variables set by hand); rank 1 is killed mid-run: rank 0 fails within
// the timeout with an error naming itself, and no checkpoint is left half-written under a final name.
TEST(DistributedTraining, KilledRankEndsTheRunCleanly)
{
    const std::string out = tempDir("killed");
    const std::string cmd = trainCommand(out, "--batch-size 2 --max-steps 400 --save-steps 3 --ddp-timeout 30");
    const std::string errFile = out + "/../dpo_dist_killed_rank0.err";
    const std::vector<pid_t> pids = startTwoRanks(cmd, errFile);
    ASSERT_TRUE(pids[0] > 0 && pids[1] > 0);
    // Let a checkpoint or two land, then kill rank 1 without warning.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(fs::path(out) / "checkpoint-6") && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::kill(pids[1], SIGKILL);
    ::waitpid(pids[1], nullptr, 0);

    int status = 0;
    const double seconds = waitUpTo60Seconds(pids[0], &status);
    if (seconds < 0)
        FAIL() << "rank 0 did not end within 60 s of rank 1's death";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "rank 0 should fail, status " << status;
    std::ifstream errIn(errFile);
    const std::string err((std::istreambuf_iterator<char>(errIn)), std::istreambuf_iterator<char>());
    EXPECT_NE(err.find("rank 0 of 2"), std::string::npos) << err;
    EXPECT_LT(seconds, 35.0) << "within --ddp-timeout 30";
    EXPECT_TRUE(fs::exists(fs::path(out) / "checkpoint-6" / "trainer_state.json"));
    EXPECT_FALSE(fs::exists(fs::path(out) / "final"));
    for (const auto &e : fs::directory_iterator(out)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("checkpoint-", 0) == 0 && name.find(".tmp") == std::string::npos)
            EXPECT_TRUE(fs::exists(e.path() / "trainer_state.json")) << name << " is incomplete";
    }
    fs::remove(errFile);
    fs::remove_all(out);
}

// A rank that hangs (SIGSTOP) makes rank 0 fail once --ddp-timeout has passed, not wait forever.
TEST(DistributedTraining, HungRankEndsTheRunAfterTheTimeout)
{
    const std::string out = tempDir("hung");
    const std::string cmd = trainCommand(out, "--batch-size 2 --max-steps 400 --save-steps 0 --ddp-timeout 5");
    const std::vector<pid_t> pids = startTwoRanks(cmd, "/dev/null");
    ASSERT_TRUE(pids[0] > 0 && pids[1] > 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (trainMetrics(out).size() < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ::kill(pids[1], SIGSTOP);
    int status = 0;
    const double seconds = waitUpTo60Seconds(pids[0], &status);
    ::kill(pids[1], SIGKILL);
    ::waitpid(pids[1], nullptr, 0);
    if (seconds < 0)
        FAIL() << "rank 0 still waits 60 s after rank 1 hung (--ddp-timeout 5)";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
    EXPECT_LT(seconds, 20.0);
    fs::remove_all(out);
}

// Ctrl-C (SIGINT/SIGTERM) to the launcher: every rank stops at the same step, one checkpoint.
TEST(DistributedTraining, StopSignalStopsEveryRankWithOneCheckpoint)
{
    const std::string out = tempDir("stop");
    const std::string cmd = trainCommand(out, "--batch-size 2 --max-steps 400 --save-steps 1000 --nproc 2");
    const std::string outFile = out + "/../dpo_dist_stop.out";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        freopen(outFile.c_str(), "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char *)nullptr);
        _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (trainMetrics(out).size() < 3 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
    std::ifstream in(outFile);
    const json summary = json::parse(in);
    EXPECT_EQ(summary.at("status"), "stopped");
    const int64_t step = summary.at("global_step").get<int64_t>();
    EXPECT_GE(step, 3);
    int checkpoints = 0;
    for (const auto &e : fs::directory_iterator(out))
        checkpoints += e.path().filename().string().rfind("checkpoint-", 0) == 0;
    EXPECT_EQ(checkpoints, 1);
    EXPECT_TRUE(fs::exists(fs::path(out) / ("checkpoint-" + std::to_string(step)) / "trainer_state.json"));
    fs::remove(outFile);
    fs::remove_all(out);
}

} // namespace test_distributed
