// Per-environment state of the addon: each main thread or worker that loads it gets its own
// class constructors. Stored with napi_set_instance_data, freed by the runtime at teardown.
#pragma once

#include <napi.h>

namespace switchboard::addon {

struct Instance {
  Napi::FunctionReference port_class;
  Napi::FunctionReference hub_class;

  static Instance& get(Napi::Env env) { return *env.GetInstanceData<Instance>(); }
};

}  // namespace switchboard::addon
