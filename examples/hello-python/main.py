"""A Jiffy python function: `handler(event, context)` is called once per invocation."""
import platform


def handler(event, context):
    print("invocation", context["invocationId"])
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    return {"message": "Hello, %s!" % name, "runtime": "python " + platform.python_version()}
