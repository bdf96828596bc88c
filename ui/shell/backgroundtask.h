// runBackgroundTask: run long work (import, export) on a QtConcurrent thread while a window-modal
// QProgressDialog shows progress and offers Cancel. The work reports progress through TaskControl
// (atomics, polled by a GUI timer, so a fast loop cannot flood the event queue) and must poll
// control.cancel. Returns when the work has finished; the GUI keeps repainting meanwhile.
// Exceptions thrown by the work come back as *error (the function then returns an empty optional).
#pragma once

#include <QString>
#include <QWidget>

#include <atomic>
#include <functional>
#include <optional>

struct TaskControl {
    std::atomic<bool> cancel { false };
    std::atomic<qint64> done { 0 };
    std::atomic<qint64> total { 0 };
};

// Type-erased core (backgroundtask.cpp); the template below wraps the result.
bool runBackgroundTaskImpl(QWidget *parent, const QString &title, const QString &label,
    const std::function<void(TaskControl &)> &work, QString *error);

template <typename R>
std::optional<R> runBackgroundTask(QWidget *parent, const QString &title, const QString &label,
    std::function<R(TaskControl &)> work, QString *error = nullptr)
{
    std::optional<R> result;
    const bool ok = runBackgroundTaskImpl(
        parent, title, label, [&](TaskControl &c) { result.emplace(work(c)); }, error);
    if (!ok)
        result.reset();
    return result;
}
