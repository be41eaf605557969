#pragma once
// Small file-system helpers of the training library: atomic whole-file writes (temporary file in
// the same folder, fsync, rename, fsync of the folder) so no reader ever sees a torn file, plus
// whole-file reads and formatting helpers shared by history, report and checkpoint code.
#include <cstdint>
#include <string>
#include <string_view>

namespace fer::training {

// Writes `bytes` to `path` atomically. Throws UserError naming the path on failure; a failed write
// leaves the previous file (if any) untouched and removes its temporary file. `durable` adds the
// fsyncs (file and folder) that make the new content survive a power loss, not just a crash of
// the process; checkpoints use it, the files rewritten every epoch for humans need not.
void write_file_atomic(const std::string& path, std::string_view bytes, bool durable = true);

// Whole file, or UserError naming the path.
std::string read_file(const std::string& path);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);

// Shortest decimal text that reads back as the same double ("0.5", "1e-07"); "nan", "inf".
std::string format_double(double v);
// The same for a float's value ("0.001" for 1e-3f, where format_double would give 0.0010000000474974513).
std::string format_float(float v);

// Local time as "2026-11-25 14:03:12" / "20261125-140312".
std::string local_timestamp(bool compact);

// "1:02:03" / "4:05" / "12.3s" style durations.
std::string format_duration(double seconds);

}  // namespace fer::training
