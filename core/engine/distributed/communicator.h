// Data-parallel training across processes on torch.distributed's c10d, the engine inside libtorch:
// a TCPStore rendezvous at torchrun's MASTER_ADDR:MASTER_PORT, ProcessGroupGloo for CPU tensors and
// ProcessGroupNCCL for CUDA tensors (when libtorch is built with it). Launch with
// `torchrun --no-python --nproc-per-node N dpo-cli train ...`, from Slurm with the same variables, or
// `dpo-cli train --nproc N`. The trainer averages gradients and metrics through one Communicator.
#pragma once

#include "engine/torch_api.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace dpo {

// torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
struct DistributedEnv {
    int rank = 0;
    int worldSize = 1;
    int localRank = 0;
    int localWorldSize = 1;
    std::string masterAddr = "127.0.0.1";
    int masterPort = 29500;

    bool distributed() const { return worldSize > 1; }
    bool isMain() const { return rank == 0; }
};

// Reads torchrun's variables; none set means one process. Throws dpo::Error naming a variable that is
// malformed or out of range, or RANK / WORLD_SIZE set without the other.
DistributedEnv distributedEnvFromEnvironment();

class Communicator {
public:
    // Joins the process group: waits until every rank has connected, at most `timeout` (then
    // dpo::Error). Collectives that wait longer than `timeout` for a rank fail the same way.
    static std::unique_ptr<Communicator> connect(
        const DistributedEnv &env, torch::Device device, std::chrono::milliseconds timeout);
    ~Communicator();
    Communicator(const Communicator &) = delete;
    Communicator &operator=(const Communicator &) = delete;

    int rank() const;
    int worldSize() const;

    // Replaces each tensor by its mean over the ranks. Tensors travel in flat buckets of at most
    // bucketBytes (one all-reduce each, as DDP's Reducer does); on Gloo they are summed in float32.
    // Every rank must pass tensors of the same shapes, dtypes and order.
    void averageInPlace(const std::vector<torch::Tensor> &tensors, int64_t bucketBytes = 25 << 20);
    // Replaces each tensor by rank `root`'s (bucketed like averageInPlace): the parameters a rank
    // updated under ZeRO-1, the optimizer state it holds when a checkpoint is written.
    void broadcastInPlace(const std::vector<torch::Tensor> &tensors, int root, int64_t bucketBytes = 25 << 20);
    // Element-wise sum / max of a few numbers over the ranks (one small all-reduce).
    std::vector<double> sum(const std::vector<double> &values);
    std::vector<double> max(const std::vector<double> &values);
    // True on every rank when `flag` is true on any rank.
    bool any(bool flag);
    void barrier();

    // Bytes this process passed to collectives so far (the payload, not the ring's traffic).
    int64_t bytesReduced() const;
    // Seconds spent inside collectives so far.
    double secondsWaiting() const;

private:
    struct Impl;
    explicit Communicator(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> d;
};

} // namespace dpo
