// Windows only: the addon's Node-API imports name "node.exe" (node-api-headers' def file), but an
// Electron app's executable is not called node.exe. The imports are delay-loaded (see
// addon/CMakeLists.txt), and this hook answers the loader's request for node.exe with the
// process's own executable, which exports Node-API whatever its name: the idea of node-gyp's
// src/win_delay_load_hook.cc. mingw-w64's delay-load helper (libmingwex) defines the hook
// variable itself, so it is set here at load time, before the first Node-API call resolves.
#include <windows.h>
// After windows.h.
#include <delayimp.h>

#include <cstring>

namespace {

FARPROC WINAPI load_exe_hook(unsigned event, PDelayLoadInfo info) {
  if (event != dliNotePreLoadLibrary || _stricmp(info->szDll, "node.exe") != 0) return nullptr;
  return reinterpret_cast<FARPROC>(::GetModuleHandleW(nullptr));
}

// Runs when the DLL is loaded, before Node.js calls napi_register_module_v1.
const bool installed = [] {
  __pfnDliNotifyHook2 = load_exe_hook;
  return true;
}();

}  // namespace
