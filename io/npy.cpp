#include "io/npy.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string_view>
#include <system_error>

#include "flowlik/error.h"

namespace flowlik {
namespace {

constexpr std::string_view kMagic("\x93NUMPY", 6);
constexpr int64_t kMaxBytes = std::numeric_limits<int64_t>::max();
// Nesting is bounded so that a hostile header like "((((..." cannot overflow the stack.
constexpr int kMaxDepth = 32;
constexpr const char* kExpectedDtypes =
    "expected float32 '<f4', float64 '<f8', uint8 '|u1' or int64 '<i8'";
constexpr const char* kExpectedKeys = "expected 'descr', 'fortran_order' and 'shape'";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError(path + ": " + what);
}

std::string errno_message(int err) { return std::generic_category().message(err); }

// Header text is untrusted: keep it printable so messages stay on one line, and short.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? char(c) : '?';
  return s.size() > 80 ? out + "..." : out;
}

// Python's repr of a tuple of ints, as numpy writes it and as users know it.
std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// prod(shape) * item, or -1 on a negative dimension or if it exceeds int64.
int64_t byte_count(const std::vector<int64_t>& shape, int64_t item) {
  int64_t total = item;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d == 0) total = 0;
  }
  for (int64_t d : shape) {
    if (total == 0) break;
    if (d > kMaxBytes / total) return -1;
    total *= d;
  }
  return total;
}

// One value of the Python literal subset numpy writes: str, bool/None, int, tuple or list.
struct Value {
  enum class Kind { kString, kBool, kNone, kInt, kTuple, kList } kind = Kind::kNone;
  std::string_view text;  // the source span, for messages
  std::string str;
  bool boolean = false;
  int64_t integer = 0;
  bool overflow = false;  // an int literal beyond int64
  std::vector<Value> items;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& path, std::string_view text) : path_(path), s_(text) {}

  std::map<std::string, Value> parse_dict() {
    std::map<std::string, Value> dict;
    skip_ws();
    expect('{', "'{'");
    for (skip_ws(); !at('}'); skip_ws()) {
      Value key = parse_value(1);
      if (key.kind != Value::Kind::kString) syntax_error("a string key");
      skip_ws();
      expect(':', "':'");
      if (!dict.emplace(key.str, parse_value(1)).second) {
        fail(path_, "header has duplicate key '" + printable(key.str) + "'");
      }
      skip_ws();
      if (!at('}')) expect(',', "',' or '}'");
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) syntax_error("end of header");
    return dict;
  }

 private:
  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  void skip_ws() {
    while (at(' ') || at('\t') || at('\r') || at('\n')) ++pos_;
  }
  void expect(char c, const char* what) {
    if (!at(c)) syntax_error(what);
    ++pos_;
  }
  [[noreturn]] void syntax_error(const std::string& expected) const {
    std::string found =
        pos_ < s_.size() ? "'" + printable(s_.substr(pos_, 20)) + "'" : "end of header";
    fail(path_, "malformed header: expected " + expected + " at offset " + std::to_string(pos_) +
                    ", found " + found);
  }
  bool take_word(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Value parse_value(int depth) {
    if (depth > kMaxDepth) {
      fail(path_, "malformed header: nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    skip_ws();
    const size_t start = pos_;
    Value v = parse_bare(depth);
    v.text = s_.substr(start, pos_ - start);
    return v;
  }

  Value parse_bare(int depth) {
    Value v;
    if (at('\'') || at('"')) {
      const char quote = s_[pos_++];
      for (; !at(quote); ++pos_) {
        if (pos_ >= s_.size() || s_[pos_] == '\n') syntax_error("closing quote");
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;  // keep the escaped char verbatim
        v.str += s_[pos_];
      }
      ++pos_;
      v.kind = Value::Kind::kString;
    } else if (take_word("True")) {
      v.kind = Value::Kind::kBool;
      v.boolean = true;
    } else if (take_word("False")) {
      v.kind = Value::Kind::kBool;
    } else if (take_word("None")) {
      v.kind = Value::Kind::kNone;
    } else if (at('-') || (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')) {
      v.kind = Value::Kind::kInt;
      const bool negative = at('-');
      if (negative) ++pos_;
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') syntax_error("a digit");
      for (; pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; ++pos_) {
        const int digit = s_[pos_] - '0';
        if (v.integer > (kMaxBytes - digit) / 10) v.overflow = true;
        if (!v.overflow) v.integer = v.integer * 10 + digit;
      }
      if (at('L')) ++pos_;  // Python 2 longs, as written by old numpy
      if (negative) v.integer = -v.integer;
    } else if (at('(') || at('[')) {
      const char close = at('(') ? ')' : ']';
      v.kind = close == ')' ? Value::Kind::kTuple : Value::Kind::kList;
      bool comma = false;
      for (++pos_, skip_ws(); !at(close); skip_ws()) {
        v.items.push_back(parse_value(depth + 1));
        skip_ws();
        if (at(close)) break;
        expect(',', close == ')' ? "',' or ')'" : "',' or ']'");
        comma = true;
      }
      ++pos_;
      // In Python "(5)" is the int 5, not a tuple.
      if (close == ')' && v.items.size() == 1 && !comma) return v.items[0];
    } else {
      syntax_error("a python literal");
    }
    return v;
  }

  const std::string& path_;
  std::string_view s_;
  size_t pos_ = 0;
};

struct Header {
  NpyDtype dtype;
  std::vector<int64_t> shape;
  int64_t nbytes;
};

Header interpret_header(const std::string& path, std::string_view text) {
  std::map<std::string, Value> dict = HeaderParser(path, text).parse_dict();
  for (const auto& [key, value] : dict) {
    if (key != "descr" && key != "fortran_order" && key != "shape") {
      fail(path, "header has unexpected key '" + printable(key) + "' (" + kExpectedKeys + ")");
    }
  }
  for (const char* key : {"descr", "fortran_order", "shape"}) {
    if (!dict.count(key)) {
      fail(path, std::string("header is missing key '") + key + "' (" + kExpectedKeys + ")");
    }
  }
  Header h;
  const Value& descr = dict["descr"];
  if (descr.kind != Value::Kind::kString) {
    fail(path,
         "unsupported dtype " + printable(descr.text) + " (structured; " + kExpectedDtypes + ")");
  }
  if (descr.str == "<f4") {
    h.dtype = NpyDtype::kFloat32;
  } else if (descr.str == "<f8") {
    h.dtype = NpyDtype::kFloat64;
  } else if (descr.str == "|u1" || descr.str == "<u1" || descr.str == "u1") {
    h.dtype = NpyDtype::kUint8;
  } else if (descr.str == "<i8") {
    h.dtype = NpyDtype::kInt64;
  } else {
    const std::string note = descr.str.starts_with('>') ? "big-endian; " : "";
    fail(path, "unsupported dtype '" + printable(descr.str) + "' (" + note + kExpectedDtypes + ")");
  }

  const Value& order = dict["fortran_order"];
  if (order.kind != Value::Kind::kBool) {
    fail(path, "fortran_order is " + printable(order.text) + " (expected False)");
  }
  if (order.boolean) fail(path, "fortran_order is True (only C order is supported)");

  const Value& shape = dict["shape"];
  const std::string shape_text = printable(shape.text);
  if (shape.kind != Value::Kind::kTuple) {
    fail(path, "shape is " + shape_text + " (expected a tuple of non-negative integers)");
  }
  for (const Value& dim : shape.items) {
    if (dim.kind != Value::Kind::kInt) {
      fail(path, "shape " + shape_text + " has non-integer dimension " + printable(dim.text));
    }
    if (dim.integer < 0) {
      fail(path, "shape " + shape_text + " has negative dimension " + printable(dim.text));
    }
    if (dim.overflow) fail(path, "shape " + shape_text + " has a dimension beyond int64");
    h.shape.push_back(dim.integer);
  }
  h.nbytes = byte_count(h.shape, int64_t(item_size(h.dtype)));
  if (h.nbytes < 0) {
    fail(path, "shape " + shape_text + " is too large: " + to_string(h.dtype) +
                   " data would exceed 2^63 bytes");
  }
  return h;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

}  // namespace

int64_t NpyArray::numel() const { return byte_count(shape, 1); }

std::string to_string(NpyDtype dtype) {
  return dtype == NpyDtype::kFloat32   ? "float32"
         : dtype == NpyDtype::kFloat64 ? "float64"
         : dtype == NpyDtype::kInt64   ? "int64"
                                       : "uint8";
}

size_t item_size(NpyDtype dtype) {
  switch (dtype) {
    case NpyDtype::kUint8:
      return 1;
    case NpyDtype::kFloat32:
      return 4;
    case NpyDtype::kFloat64:
    case NpyDtype::kInt64:
      return 8;
  }
  return 0;
}

NpyArray read_npy(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // Checked before opening: fopen on a FIFO would block, and directories open fine on Linux.
  const fs::file_status status = fs::status(path, ec);
  if (fs::is_directory(status)) fail(path, "cannot open file (" + errno_message(EISDIR) + ")");
  if (fs::exists(status) && !fs::is_regular_file(status)) {
    fail(path, "cannot open file (not a regular file)");
  }
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail(path, "cannot open file (" + errno_message(errno) + ")");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) fail(path, "cannot read file (" + ec.message() + ")");

  // Reads exactly n bytes at the current position; the caller has checked n against size.
  auto read = [&](size_t n) {
    std::string buf(n, '\0');
    const size_t got = std::fread(buf.data(), 1, n, file.get());
    if (got != n) {
      const std::string why = std::ferror(file.get()) ? errno_message(errno) : "file changed size";
      fail(path, "cannot read file (" + why + ")");
    }
    return buf;
  };

  const std::string magic = read(std::min<uintmax_t>(size, 8));
  if (magic.size() < kMagic.size() || !magic.starts_with(kMagic)) {
    fail(path, "not a .npy file (bad magic)");
  }
  if (magic.size() < 8) fail(path, "truncated: file ends inside the format version");
  const int major = static_cast<unsigned char>(magic[6]);
  const int minor = static_cast<unsigned char>(magic[7]);
  if (major < 1 || major > 3 || minor != 0) {
    fail(path, "unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (expected 1.0, 2.0 or 3.0)");
  }
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (size < 8 + len_bytes) fail(path, "truncated: file ends inside the header length");
  const std::string len_field = read(len_bytes);
  uint64_t header_len = 0;
  for (size_t i = len_bytes; i-- > 0;) header_len = header_len << 8 | uint8_t(len_field[i]);
  const uint64_t data_offset = 8 + len_bytes + header_len;
  if (data_offset > size) {
    fail(path, "truncated: header length is " + std::to_string(header_len) + " bytes, file has " +
                   std::to_string(size - 8 - len_bytes) + " after the preamble");
  }
  const Header h = interpret_header(path, read(header_len));

  const uintmax_t available = size - data_offset;
  if (available != uint64_t(h.nbytes)) {
    fail(path, std::string(available < uint64_t(h.nbytes) ? "truncated" : "trailing data") +
                   ": header declares shape " + shape_string(h.shape) + " = " +
                   std::to_string(h.nbytes) + " bytes of " + to_string(h.dtype) +
                   " data, file has " + std::to_string(available));
  }
  NpyArray array{h.dtype, h.shape, {}};
  array.bytes.resize(size_t(h.nbytes));
  if (h.nbytes > 0 &&
      std::fread(array.bytes.data(), 1, array.bytes.size(), file.get()) != array.bytes.size()) {
    fail(path, "cannot read file (file changed size while reading)");
  }
  return array;
}

void write_npy(const std::string& path, const NpyArray& array) {
  const int64_t nbytes = byte_count(array.shape, int64_t(item_size(array.dtype)));
  if (nbytes < 0 || uint64_t(nbytes) != array.bytes.size()) {
    throw OutputError(path + ": cannot write array: shape " + shape_string(array.shape) + " of " +
                      to_string(array.dtype) + " does not match " +
                      std::to_string(array.bytes.size()) + " bytes of data");
  }
  const char* descr = array.dtype == NpyDtype::kFloat32   ? "<f4"
                      : array.dtype == NpyDtype::kFloat64 ? "<f8"
                      : array.dtype == NpyDtype::kInt64   ? "<i8"
                                                          : "|u1";
  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': " + shape_string(array.shape) + ", }";
  // numpy leaves room to grow the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
  if (!array.shape.empty()) dict.append(21 - std::to_string(array.shape[0]).size(), ' ');
  // numpy pads with spaces and a newline so the data starts on a 64-byte boundary.
  auto padded_len = [&](size_t prefix) {
    return dict.size() + 1 + 64 - (prefix + dict.size() + 1) % 64;
  };
  const bool v1 = padded_len(10) <= 0xffff;
  const size_t header_len = padded_len(v1 ? 10 : 12);
  std::string out(kMagic);
  out += {char(v1 ? 1 : 2), 0};
  for (size_t i = 0; i < (v1 ? 2u : 4u); ++i) out += char((header_len >> (8 * i)) & 0xff);
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out += '\n';

  auto fail_write = [&] {
    throw OutputError(path + ": cannot write file (" + errno_message(errno) + ")");
  };
  File file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) fail_write();
  if (std::fwrite(out.data(), 1, out.size(), file.get()) != out.size() ||
      (nbytes > 0 &&
       std::fwrite(array.bytes.data(), 1, array.bytes.size(), file.get()) != array.bytes.size())) {
    fail_write();
  }
  // fclose flushes, so a full disk may only show up here.
  if (std::fclose(file.release()) != 0) fail_write();
}

}  // namespace flowlik
