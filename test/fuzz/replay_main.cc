// Replays fuzz inputs as an ordinary test: feeds every file of the directories (or files) named on
// the command line to the target's LLVMFuzzerTestOneInput, in name order, and fails if any input
// crashes or trips a sanitizer (the harness aborts on a broken invariant). Built with the normal
// compiler under SWITCHBOARD_TESTS, so `npm test` and the ASan lane run the seed corpus and every
// minimised crash without clang or libFuzzer.
//
// An argument may be followed by ":required" to fail when it holds no input: the seed corpus must
// exist, while a crash directory is empty until the fuzzer finds something.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::vector<std::filesystem::path> inputs_of(const std::filesystem::path& where) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  if (std::filesystem::is_regular_file(where, ec)) {
    files.push_back(where);
  } else if (std::filesystem::is_directory(where, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(where)) {
      // Dot files (.gitkeep) keep an empty directory in git; they are not inputs.
      if (entry.is_regular_file() && entry.path().filename().string().front() != '.') {
        files.push_back(entry.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <dir-or-file>[:required]...\n", argv[0]);
    return 2;
  }
  std::size_t total = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool required = false;
    if (arg.size() > 9 && arg.ends_with(":required")) {
      required = true;
      arg.resize(arg.size() - 9);
    }
    auto files = inputs_of(arg);
    if (files.empty() && required) {
      std::fprintf(stderr, "%s holds no input: the seed corpus is missing\n", arg.c_str());
      return 1;
    }
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      if (!in.eof() && in.fail()) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 1;
      }
      // A copy in its own allocation, so ASan sees a read past the end of the input.
      std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
      LLVMFuzzerTestOneInput(data.data(), data.size());
    }
    std::printf("replayed %zu inputs from %s\n", files.size(), arg.c_str());
    total += files.size();
  }
  std::printf("replayed %zu inputs in all\n", total);
  return 0;
}
