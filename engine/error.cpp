#include "engine/error.h"

namespace fer {

void throw_user_error(const std::string& message) { throw UserError(message); }

}  // namespace fer
