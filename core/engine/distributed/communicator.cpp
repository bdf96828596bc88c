#include "engine/distributed/communicator.h"

#include "engine/error.h"

#ifdef DPO_HAVE_C10D
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <map>

namespace dpo {

namespace {

// The value of environment variable `name` as an integer in [lo, hi]; `fallback` when unset.
int envInt(const char *name, int fallback, int lo, int hi)
{
    const char *text = std::getenv(name);
    if (!text || !*text)
        return fallback;
    errno = 0;
    char *end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (errno || *end || v < lo || v > hi)
        throw Error(std::string("environment variable ") + name + "=" + text + ": expected an integer in ["
            + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
}

[[maybe_unused]] std::string firstLine(const std::string &text)
{
    const auto nl = text.find('\n');
    return nl == std::string::npos ? text : text.substr(0, nl);
}

} // namespace

DistributedEnv distributedEnvFromEnvironment()
{
    DistributedEnv env;
    const bool hasRank = std::getenv("RANK") != nullptr, hasWorld = std::getenv("WORLD_SIZE") != nullptr;
    if (hasRank != hasWorld)
        throw Error(std::string("environment variable ") + (hasRank ? "WORLD_SIZE" : "RANK") + " is not set while "
            + (hasRank ? "RANK" : "WORLD_SIZE") + " is (a distributed run needs both, as torchrun sets them)");
    env.worldSize = envInt("WORLD_SIZE", 1, 1, 1 << 16);
    env.rank = envInt("RANK", 0, 0, env.worldSize - 1);
    env.localWorldSize = envInt("LOCAL_WORLD_SIZE", env.worldSize, 1, env.worldSize);
    env.localRank = envInt("LOCAL_RANK", env.rank % env.localWorldSize, 0, env.localWorldSize - 1);
    if (const char *addr = std::getenv("MASTER_ADDR"); addr && *addr)
        env.masterAddr = addr;
    env.masterPort = envInt("MASTER_PORT", 29500, 1, 65535);
    return env;
}

#ifdef DPO_HAVE_C10D

struct Communicator::Impl {
    DistributedEnv env;
    torch::Device device { torch::kCPU };
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
    int64_t bytes = 0;
    double seconds = 0;

    // Runs one all-reduce (root < 0) or broadcast from `root` and waits for it; c10d's errors become
    // dpo::Error naming this rank.
    void collective(std::vector<at::Tensor> &tensors, c10d::ReduceOp op, int root = -1)
    {
        const auto t0 = std::chrono::steady_clock::now();
        try {
            c10d::AllreduceOptions reduce;
            reduce.reduceOp = op;
            c10d::BroadcastOptions broadcast;
            broadcast.rootRank = root;
#ifdef USE_C10D_NCCL
            if (nccl) {
                (root < 0 ? nccl->allreduce(tensors, reduce) : nccl->broadcast(tensors, broadcast))->wait();
                torch::cuda::synchronize(device.index());
            } else
#endif
                (root < 0 ? gloo->allreduce(tensors, reduce) : gloo->broadcast(tensors, broadcast))->wait();
        } catch (const std::exception &e) {
            throw Error("distributed run, rank " + std::to_string(env.rank) + " of " + std::to_string(env.worldSize)
                + ": a collective failed (another rank stopped, crashed or timed out): " + firstLine(e.what()));
        }
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (const auto &t : tensors)
            bytes += int64_t(t.numel() * t.element_size());
    }

    torch::Device commDevice() const
    {
#ifdef USE_C10D_NCCL
        if (nccl)
            return device;
#endif
        return torch::kCPU;
    }

    // Calls fn(bucket) for flat buckets of consecutive tensors of one dtype and device, at most
    // bucketBytes each (at least one tensor), then copies the bucket's values back into the tensors.
    // Gloo gets float32 buckets (it has no bfloat16 kernels; bf16/f16 -> f32 -> back is exact);
    // NCCL gets the tensors' own dtype.
    template <class Fn> void forEachBucket(const std::vector<torch::Tensor> &tensors, int64_t bucketBytes, Fn fn)
    {
        torch::NoGradGuard noGrad;
        const torch::Device wireDevice = commDevice();
        size_t i = 0;
        while (i < tensors.size()) {
            const torch::ScalarType dtype = tensors[i].scalar_type();
            const torch::Device where = tensors[i].device();
            size_t j = i;
            int64_t size = 0;
            std::vector<torch::Tensor> flat;
            while (j < tensors.size() && tensors[j].scalar_type() == dtype && tensors[j].device() == where
                && (j == i || size + tensors[j].numel() * tensors[j].element_size() <= bucketBytes)) {
                size += tensors[j].numel() * tensors[j].element_size();
                flat.push_back(tensors[j].reshape({ -1 }));
                ++j;
            }
            const torch::ScalarType wire = wireDevice.is_cuda() || dtype == torch::kFloat64 ? dtype : torch::kFloat32;
            torch::Tensor bucket = torch::cat(flat).to(wireDevice, wire);
            fn(bucket);
            int64_t offset = 0;
            for (size_t k = i; k < j; ++k) {
                const int64_t n = tensors[k].numel();
                tensors[k].copy_(bucket.narrow(0, offset, n).view(tensors[k].sizes()));
                offset += n;
            }
            i = j;
        }
    }

    std::vector<double> reduceDoubles(const std::vector<double> &values, c10d::ReduceOp op)
    {
        if (values.empty())
            return {};
        torch::Tensor t = torch::tensor(values, torch::kFloat64).to(commDevice());
        std::vector<at::Tensor> list { t };
        collective(list, op);
        t = t.cpu();
        return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    }
};

Communicator::Communicator(std::unique_ptr<Impl> impl)
    : d(std::move(impl))
{
}

Communicator::~Communicator() = default;

std::unique_ptr<Communicator> Communicator::connect(
    const DistributedEnv &env, torch::Device device, std::chrono::milliseconds timeout)
{
    auto impl = std::make_unique<Impl>();
    impl->env = env;
    impl->device = device;
    const std::string where = env.masterAddr + ":" + std::to_string(env.masterPort);
    try {
        c10d::TCPStoreOptions opts;
        opts.port = uint16_t(env.masterPort);
        opts.isServer = env.rank == 0;
        opts.numWorkers = size_t(env.worldSize);
        opts.waitWorkers = true;
        opts.timeout = timeout;
        impl->store = c10::make_intrusive<c10d::TCPStore>(env.masterAddr, opts);
    } catch (const std::exception &e) {
        throw Error("distributed run, rank " + std::to_string(env.rank) + ": no rendezvous at " + where
            + " (MASTER_ADDR:MASTER_PORT) within " + std::to_string(timeout.count() / 1000)
            + " s: " + firstLine(e.what()));
    }
    try {
#ifdef USE_C10D_NCCL
        if (device.is_cuda()) {
            auto opts = c10d::ProcessGroupNCCL::Options::create();
            opts->timeout = timeout;
            impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.worldSize, opts);
        }
        if (!impl->nccl)
#endif
        {
            auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
            // GLOO_SOCKET_IFNAME picks the interface as in PyTorch; a loopback master keeps everything on
            // loopback (a host name that does not resolve to a local address would fail the rendezvous).
            if (const char *ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
                opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            else if (env.masterAddr == "localhost" || env.masterAddr.rfind("127.", 0) == 0)
                opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
            else
                opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            opts->threads = 2;
            impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.worldSize, opts);
        }
    } catch (const std::exception &e) {
        throw Error("distributed run, rank " + std::to_string(env.rank) + " of " + std::to_string(env.worldSize)
            + ": cannot join the process group at " + where + ": " + firstLine(e.what()));
    }
    return std::unique_ptr<Communicator>(new Communicator(std::move(impl)));
}

int Communicator::rank() const
{
    return d->env.rank;
}
int Communicator::worldSize() const
{
    return d->env.worldSize;
}
int64_t Communicator::bytesReduced() const
{
    return d->bytes;
}
double Communicator::secondsWaiting() const
{
    return d->seconds;
}

void Communicator::averageInPlace(const std::vector<torch::Tensor> &tensors, int64_t bucketBytes)
{
    d->forEachBucket(tensors, bucketBytes, [&](torch::Tensor &bucket) {
        std::vector<at::Tensor> list { bucket };
        d->collective(list, c10d::ReduceOp::SUM);
        bucket.div_(double(d->env.worldSize));
    });
}

void Communicator::broadcastInPlace(const std::vector<torch::Tensor> &tensors, int root, int64_t bucketBytes)
{
    d->forEachBucket(tensors, bucketBytes, [&](torch::Tensor &bucket) {
        std::vector<at::Tensor> list { bucket };
        d->collective(list, c10d::ReduceOp::SUM, root);
    });
}

std::vector<double> Communicator::sum(const std::vector<double> &values)
{
    return d->reduceDoubles(values, c10d::ReduceOp::SUM);
}

std::vector<double> Communicator::max(const std::vector<double> &values)
{
    return d->reduceDoubles(values, c10d::ReduceOp::MAX);
}

bool Communicator::any(bool flag)
{
    return max({ flag ? 1.0 : 0.0 })[0] > 0;
}

void Communicator::barrier()
{
    sum({ 0.0 });
}

#else // no c10d in this build

struct Communicator::Impl { };

Communicator::Communicator(std::unique_ptr<Impl> impl)
    : d(std::move(impl))
{
}

Communicator::~Communicator() = default;

std::unique_ptr<Communicator> Communicator::connect(const DistributedEnv &env, torch::Device, std::chrono::milliseconds)
{
    throw Error("distributed run (WORLD_SIZE=" + std::to_string(env.worldSize)
        + "): this dpo-cli was built without "
          "c10d's Gloo headers (Debian: apt-get install libgloo-dev, then rebuild)");
}

int Communicator::rank() const
{
    return 0;
}
int Communicator::worldSize() const
{
    return 1;
}
int64_t Communicator::bytesReduced() const
{
    return 0;
}
double Communicator::secondsWaiting() const
{
    return 0;
}
void Communicator::averageInPlace(const std::vector<torch::Tensor> &, int64_t)
{
}
void Communicator::broadcastInPlace(const std::vector<torch::Tensor> &, int, int64_t)
{
}
std::vector<double> Communicator::sum(const std::vector<double> &values)
{
    return values;
}
std::vector<double> Communicator::max(const std::vector<double> &values)
{
    return values;
}
bool Communicator::any(bool flag)
{
    return flag;
}
void Communicator::barrier()
{
}

#endif

} // namespace dpo
