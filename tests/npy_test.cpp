#include "io/npy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "flowlik/error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string Preamble(int major, uint32_t header_len) {
  std::string out("\x93NUMPY", 6);
  out += char(major);
  out += '\0';
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) out += char((header_len >> (8 * i)) & 0xff);
  return out;
}

// The header exactly as numpy.save lays it out: dict, spaces, newline, data on a 64-byte boundary.
std::string NumpyHeader(int major, const std::string& dict) {
  const size_t prefix = major == 1 ? 10 : 12;
  const size_t len = dict.size() + 1 + 64 - (prefix + dict.size() + 1) % 64;
  return Preamble(major, uint32_t(len)) + dict + std::string(len - dict.size() - 1, ' ') + "\n";
}

// A header with no alignment padding, as hand-written or foreign tools may produce.
std::string BareHeader(const std::string& dict, int major = 1) {
  return Preamble(major, uint32_t(dict.size())) + dict;
}

std::string Floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Random so that parallel runs (ctest -j, several checkouts) never share a directory.
    dir_ = fs::temp_directory_path() /
           ("flowlik_npy_test_" + std::to_string(std::random_device{}()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  // Reads the file, expecting a DataError; returns its message.
  std::string ReadError(const std::string& path) {
    try {
      read_npy(path);
    } catch (const DataError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kData);
      const std::string message = e.what();
      EXPECT_THAT(message, StartsWith(path + ": "));
      EXPECT_THAT(message, Not(HasSubstr("\n")));
      return message;
    }
    ADD_FAILURE() << "no DataError for " << path;
    return "";
  }

  std::string ReadError(const std::string& name, const std::string& contents) {
    return ReadError(Write(name, contents));
  }

  fs::path dir_;
};

// --- round trips -------------------------------------------------------------------------------

TEST_F(NpyTest, RoundTripsEveryDtypeAndShape) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3}, {2, 3, 4}};
  for (NpyDtype dtype :
       {NpyDtype::kFloat32, NpyDtype::kFloat64, NpyDtype::kUint8, NpyDtype::kInt64}) {
    for (const auto& shape : shapes) {
      NpyArray array{dtype, shape, {}};
      array.bytes.resize(size_t(array.numel()) * item_size(dtype));
      for (size_t i = 0; i < array.bytes.size(); ++i) array.bytes[i] = (unsigned char)(i * 7 + 1);
      const std::string path = (dir_ / "round.npy").string();
      write_npy(path, array);
      const NpyArray back = read_npy(path);
      SCOPED_TRACE(to_string(dtype) + " rank " + std::to_string(shape.size()));
      EXPECT_EQ(back.dtype, dtype);
      EXPECT_EQ(back.shape, shape);
      EXPECT_EQ(back.bytes, array.bytes);
      EXPECT_EQ(fs::file_size(path) % 64, array.bytes.size() % 64);  // data is 64-byte aligned
    }
  }
}

TEST_F(NpyTest, NumelAndDtypeNames) {
  EXPECT_EQ((NpyArray{NpyDtype::kUint8, {}, {}}.numel()), 1);
  EXPECT_EQ((NpyArray{NpyDtype::kUint8, {2, 0, 5}, {}}.numel()), 0);
  EXPECT_EQ((NpyArray{NpyDtype::kUint8, {2, 3, 4}, {}}.numel()), 24);
  EXPECT_EQ((NpyArray{NpyDtype::kUint8, {2, -1}, {}}.numel()), -1);
  EXPECT_EQ((NpyArray{NpyDtype::kUint8, {1LL << 32, 1LL << 32}, {}}.numel()), -1);
  EXPECT_EQ(to_string(NpyDtype::kFloat32), "float32");
  EXPECT_EQ(to_string(NpyDtype::kFloat64), "float64");
  EXPECT_EQ(to_string(NpyDtype::kUint8), "uint8");
  EXPECT_EQ(item_size(NpyDtype::kFloat32), 4u);
  EXPECT_EQ(item_size(NpyDtype::kFloat64), 8u);
  EXPECT_EQ(item_size(NpyDtype::kUint8), 1u);
}

TEST_F(NpyTest, WritesTheSameBytesAsNumpySave) {
  // np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) with numpy 2.4.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  std::string expected = std::string("\x93NUMPY\x01\x00v\x00", 10) + dict +
                         std::string(117 - dict.size(), ' ') + "\n" + Floats({0, 1, 2, 3, 4, 5});
  ASSERT_EQ(expected.size(), 152u);
  const std::string data = Floats({0, 1, 2, 3, 4, 5});
  write_npy((dir_ / "w.npy").string(),
            NpyArray{NpyDtype::kFloat32, {2, 3}, {data.begin(), data.end()}});
  std::ifstream in(dir_ / "w.npy", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), expected);
}

TEST_F(NpyTest, WritesVersion2WhenTheHeaderDoesNotFitVersion1) {
  NpyArray array{NpyDtype::kUint8, std::vector<int64_t>(30000, 1), {0x2a}};
  const std::string path = (dir_ / "big_header.npy").string();
  write_npy(path, array);
  std::ifstream in(path, std::ios::binary);
  char preamble[8];
  in.read(preamble, 8);
  EXPECT_EQ(preamble[6], 2);
  const NpyArray back = read_npy(path);
  EXPECT_EQ(back.shape, array.shape);
  EXPECT_EQ(back.bytes, array.bytes);
}

TEST_F(NpyTest, WriteRejectsMismatchedDataAndBadPaths) {
  NpyArray wrong{NpyDtype::kFloat32, {2, 3}, std::vector<unsigned char>(8)};
  EXPECT_THROW(write_npy((dir_ / "x.npy").string(), wrong), OutputError);
  NpyArray negative{NpyDtype::kUint8, {-1}, {}};
  EXPECT_THROW(write_npy((dir_ / "x.npy").string(), negative), OutputError);
  NpyArray ok{NpyDtype::kUint8, {1}, {1}};
  try {
    write_npy((dir_ / "no_such_dir" / "x.npy").string(), ok);
    ADD_FAILURE() << "no OutputError";
  } catch (const OutputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot write file (No such file or directory)"));
  }
}

// --- files as numpy writes them ----------------------------------------------------------------

TEST_F(NpyTest, ReadsNumpyVersion1Float32) {
  const std::string path = Write(
      "v1.npy", NumpyHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") +
                    Floats({0, 1, 2, 3, 4, 5}));
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.dtype, NpyDtype::kFloat32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(a.bytes.size(), 24u);
  float values[6];
  std::memcpy(values, a.bytes.data(), 24);
  EXPECT_EQ(values[5], 5.0f);
}

TEST_F(NpyTest, ReadsNumpyVersion2And3) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  for (int major : {2, 3}) {
    const std::string contents = NumpyHeader(major, dict) + Floats({0, 1, 2, 3, 4, 5});
    // np.lib.format.write_array(f, a, version=(major, 0)) gives a 152-byte file, length 't\0\0\0'.
    ASSERT_EQ(contents.size(), 152u);
    ASSERT_EQ(contents.substr(6, 6), std::string({char(major), 0, 't', 0, 0, 0}));
    const NpyArray a = read_npy(Write("v" + std::to_string(major) + ".npy", contents));
    EXPECT_EQ(a.dtype, NpyDtype::kFloat32);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.bytes.size(), 24u);
  }
}

TEST_F(NpyTest, ReadsNumpyScalarEmptyAndUint8) {
  const std::string scalar =
      NumpyHeader(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }");
  const NpyArray s = read_npy(Write("scalar.npy", scalar + std::string("\0\0\0\0\0\0\x04@", 8)));
  EXPECT_EQ(s.dtype, NpyDtype::kFloat64);
  EXPECT_TRUE(s.shape.empty());
  double value;
  std::memcpy(&value, s.bytes.data(), 8);
  EXPECT_EQ(value, 2.5);

  const NpyArray e = read_npy(Write(
      "empty.npy", NumpyHeader(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (0,), }")));
  EXPECT_EQ(e.dtype, NpyDtype::kUint8);
  EXPECT_EQ(e.shape, std::vector<int64_t>{0});
  EXPECT_TRUE(e.bytes.empty());
}

TEST_F(NpyTest, ParsesHeaderVariations) {
  struct Case {
    std::string dict;
    NpyDtype dtype;
    std::vector<int64_t> shape;
  };
  const std::vector<Case> cases = {
      {"{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", NpyDtype::kFloat32, {2}},
      {"{ \"descr\" : \"<f8\" ,\n 'fortran_order':False,'shape':( 1 , 2 ,) , }  \n",
       NpyDtype::kFloat64,
       {1, 2}},
      {"{'descr': '<u1', 'fortran_order': False, 'shape': (2L,), }", NpyDtype::kUint8, {2}},
      {"{'descr': 'u1', 'fortran_order': False, 'shape': (1, 2)}", NpyDtype::kUint8, {1, 2}},
      {"{'descr': '|u1', 'fortran_order': False, 'shape': ((2),), }", NpyDtype::kUint8, {2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dict);
    NpyArray expected{c.dtype, c.shape, {}};
    const std::string data(size_t(expected.numel()) * item_size(c.dtype), '\x01');
    const NpyArray a = read_npy(Write("var.npy", BareHeader(c.dict) + data));
    EXPECT_EQ(a.dtype, c.dtype);
    EXPECT_EQ(a.shape, c.shape);
    EXPECT_EQ(a.bytes.size(), data.size());
  }
}

// --- malformed files ---------------------------------------------------------------------------

std::string Dict(const std::string& descr, const std::string& order, const std::string& shape) {
  return "{'descr': " + descr + ", 'fortran_order': " + order + ", 'shape': " + shape + ", }";
}

TEST_F(NpyTest, RejectsUnsupportedDtypes) {
  EXPECT_THAT(ReadError("i4.npy", NumpyHeader(1, Dict("'<i4'", "False", "(1,)")) + "1234"),
              HasSubstr("unsupported dtype '<i4' (expected float32 '<f4', float64 '<f8', "
                        "uint8 '|u1' or int64 '<i8')"));
  EXPECT_THAT(ReadError("be.npy", NumpyHeader(1, Dict("'>f4'", "False", "(1,)")) + "1234"),
              HasSubstr("unsupported dtype '>f4' (big-endian;"));
  for (const char* descr : {"'<f2'", "'|b1'", "'<c8'", "'|S3'", "'=f4'"}) {
    EXPECT_THAT(ReadError("other.npy", NumpyHeader(1, Dict(descr, "False", "(1,)")) + "1234"),
                HasSubstr(std::string("unsupported dtype ") + descr));
  }
  EXPECT_THAT(ReadError("struct.npy",
                        NumpyHeader(1, Dict("[('a', '<f4'), ('b', '<f4')]", "False", "(1,)"))),
              HasSubstr("unsupported dtype [('a', '<f4'), ('b', '<f4')] (structured;"));
}

TEST_F(NpyTest, RejectsFortranOrder) {
  EXPECT_THAT(ReadError("f.npy", NumpyHeader(1, Dict("'<f4'", "True", "(1,)")) + "1234"),
              HasSubstr("fortran_order is True (only C order is supported)"));
  EXPECT_THAT(ReadError("f.npy", NumpyHeader(1, Dict("'<f4'", "0", "(1,)")) + "1234"),
              HasSubstr("fortran_order is 0 (expected False)"));
}

TEST_F(NpyTest, RejectsMissingDuplicateAndUnexpectedKeys) {
  EXPECT_THAT(ReadError("k.npy", NumpyHeader(1, "{'descr': '<f4', 'fortran_order': False}")),
              HasSubstr("header is missing key 'shape'"));
  EXPECT_THAT(ReadError("k.npy", NumpyHeader(1, "{'shape': (), 'fortran_order': False}")),
              HasSubstr("header is missing key 'descr'"));
  EXPECT_THAT(ReadError("k.npy", NumpyHeader(1, "{'descr': '<f4', 'shape': ()}")),
              HasSubstr("header is missing key 'fortran_order'"));
  EXPECT_THAT(ReadError("k.npy", NumpyHeader(1, "{}")), HasSubstr("header is missing key"));
  EXPECT_THAT(
      ReadError("k.npy", NumpyHeader(1,
                                     "{'descr': '<f4', 'fortran_order': False, 'shape': (), "
                                     "'extra': 1}")),
      HasSubstr("header has unexpected key 'extra'"));
  EXPECT_THAT(ReadError("k.npy", NumpyHeader(1,
                                             "{'descr': '<f4', 'descr': '<f4', "
                                             "'fortran_order': False, 'shape': ()}")),
              HasSubstr("header has duplicate key 'descr'"));
}

TEST_F(NpyTest, RejectsBadShapes) {
  EXPECT_THAT(ReadError("s.npy", NumpyHeader(1, Dict("'<f4'", "False", "(3, -1)"))),
              HasSubstr("shape (3, -1) has negative dimension -1"));
  EXPECT_THAT(ReadError("s.npy", NumpyHeader(1, Dict("'<f4'", "False", "(5)"))),
              HasSubstr("shape is (5) (expected a tuple of non-negative integers)"));
  EXPECT_THAT(ReadError("s.npy", NumpyHeader(1, Dict("'<f4'", "False", "[5]"))),
              HasSubstr("shape is [5] (expected a tuple"));
  EXPECT_THAT(ReadError("s.npy", NumpyHeader(1, Dict("'<f4'", "False", "(2, 'a')"))),
              HasSubstr("shape (2, 'a') has non-integer dimension 'a'"));
  EXPECT_THAT(ReadError("s.npy", NumpyHeader(1, Dict("'<f4'", "False", "(99999999999999999999,)"))),
              HasSubstr("has a dimension beyond int64"));
  // Each dimension fits int64 but the byte count does not: must not wrap around to a small size.
  EXPECT_THAT(
      ReadError("s.npy", NumpyHeader(1, Dict("'<f4'", "False", "(4294967296, 4294967296)"))),
      HasSubstr("shape (4294967296, 4294967296) is too large: float32 data would exceed"));
  EXPECT_THAT(ReadError("s.npy", NumpyHeader(1, Dict("'<f8'", "False", "(2305843009213693952,)"))),
              HasSubstr("is too large"));
}

TEST_F(NpyTest, RejectsBadMagicAndVersion) {
  EXPECT_THAT(ReadError("m.npy", "PK\x03\x04 this is a zip"),
              HasSubstr("not a .npy file (bad magic)"));
  EXPECT_THAT(ReadError("m.npy", ""), HasSubstr("not a .npy file (bad magic)"));
  EXPECT_THAT(ReadError("m.npy", std::string("\x93NUM", 4)), HasSubstr("bad magic"));
  EXPECT_THAT(ReadError("m.npy", std::string("\x93NUMPY\x01", 7)), HasSubstr("truncated"));
  EXPECT_THAT(ReadError("m.npy", std::string("\x93NUMPY\x01\x00\x05", 9)),
              HasSubstr("truncated: file ends inside the header length"));
  const std::string dict = Dict("'<f4'", "False", "(1,)");
  EXPECT_THAT(ReadError("v.npy", BareHeader(dict, 4) + "1234"),
              HasSubstr("unsupported format version 4.0 (expected 1.0, 2.0 or 3.0)"));
  std::string minor = BareHeader(dict) + "1234";
  minor[7] = 1;
  EXPECT_THAT(ReadError("v.npy", minor), HasSubstr("unsupported format version 1.1"));
}

TEST_F(NpyTest, RejectsHeaderLengthBeyondFile) {
  EXPECT_THAT(ReadError("h.npy", Preamble(1, 5000) + "{'descr': '<f4'"),
              HasSubstr("truncated: header length is 5000 bytes, file has 15 after the preamble"));
  EXPECT_THAT(ReadError("h.npy", Preamble(2, 0xffffffffu) + "{}"),
              HasSubstr("truncated: header length is 4294967295 bytes"));
}

TEST_F(NpyTest, RejectsTruncatedAndTrailingData) {
  const std::string header = NumpyHeader(1, Dict("'<f4'", "False", "(10, 3)"));
  EXPECT_THAT(ReadError("t.npy", header + std::string(64, '\0')),
              HasSubstr("truncated: header declares shape (10, 3) = 120 bytes of float32 data, "
                        "file has 64"));
  EXPECT_THAT(ReadError("t.npy", header + std::string(200, '\0')),
              HasSubstr("trailing data: header declares shape (10, 3) = 120 bytes of float32 "
                        "data, file has 200"));
  EXPECT_THAT(
      ReadError("t.npy", NumpyHeader(1, Dict("'<f8'", "False", "()"))),
      HasSubstr("truncated: header declares shape () = 8 bytes of float64 data, file has 0"));
}

TEST_F(NpyTest, RejectsMalformedHeaderSyntax) {
  for (const std::string dict :
       {"", "{", "[]", "{'descr' '<f4'}", "{'descr': '<f4}", "{'descr': <f4}", "{'a': 1} x",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,, 2)}", "{1: 2}", "{'shape': (-)}",
        "{'descr': '<f4' 'shape': ()}"}) {
    EXPECT_THAT(ReadError("syntax.npy", BareHeader(dict)), HasSubstr("malformed header")) << dict;
  }
  EXPECT_THAT(ReadError("syntax.npy", BareHeader("{'shape': (1 2)}")),
              HasSubstr("malformed header: expected ',' or ')' at offset 13, found '2)}'"));
  // Deep nesting must be refused, not recursed into until the stack runs out.
  EXPECT_THAT(ReadError("deep.npy", NumpyHeader(2, "{'shape': " + std::string(100000, '(') + "}")),
              HasSubstr("malformed header: nested deeper than"));
}

TEST_F(NpyTest, RejectsMissingFilesAndDirectories) {
  const std::string missing = (dir_ / "missing.npy").string();
  EXPECT_EQ(ReadError(missing), missing + ": cannot open file (No such file or directory)");
  EXPECT_THAT(ReadError(dir_.string()), HasSubstr("cannot open file (Is a directory)"));
}

// Every prefix and every single-byte corruption of a valid file must give a DataError or a
// well-formed array; never a crash, a hang or another exception type.
TEST_F(NpyTest, SurvivesTruncationAndCorruption) {
  const std::string valid =
      NumpyHeader(1, Dict("'<f4'", "False", "(2, 3)")) + Floats({0, 1, 2, 3, 4, 5});
  int count = 0;
  auto check = [&](const std::string& contents) {
    // A fresh name each time: rewriting one file in place is ~100x slower on ext4 (auto_da_alloc).
    const std::string path = Write("fuzz" + std::to_string(count++) + ".npy", contents);
    try {
      const NpyArray a = read_npy(path);
      EXPECT_EQ(a.bytes.size(), size_t(a.numel()) * item_size(a.dtype));
    } catch (const DataError& e) {
      EXPECT_THAT(e.what(), AllOf(StartsWith(path + ": "), Not(HasSubstr("\n"))));
    }
  };
  for (size_t n = 0; n < valid.size(); ++n) check(valid.substr(0, n));
  for (size_t i = 0; i < 128; ++i) {
    for (unsigned char byte : {0x00, 0x0a, 0x20, 0x27, 0x28, 0x29, 0x2c, 0x31, 0x7b, 0xff}) {
      std::string corrupt = valid;
      corrupt[i] = char(byte);
      check(corrupt);
    }
  }
}

}  // namespace
}  // namespace flowlik
