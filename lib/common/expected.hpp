// Expected<T>: the result type of control-plane code (GCC 12 has no std::expected).
//
// Holds either a value or a human-readable error that names the offending input.
// Control-plane functions return it instead of throwing; the data path never uses it.
// Thread contract: a plain value type, no shared state.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sluice {

struct Error {
    std::string message;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

template <typename T>
class [[nodiscard]] Expected {
public:
    Expected(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
    Expected(Error error) : v_(std::move(error)) {}        // NOLINT: implicit by design

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const std::string& error() const { return std::get<1>(v_).message; }

private:
    std::variant<T, Error> v_;
};

// Expected<void> equivalent.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(Error error) : error_(std::move(error.message)), failed_(true) {}  // NOLINT
    bool ok() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return ok(); }
    const std::string& error() const { return error_; }

private:
    std::string error_;
    bool failed_ = false;
};

}  // namespace sluice
